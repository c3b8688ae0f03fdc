"""The client of multitask exports (tfbert.export.multitask): every head at once, or one head through its own client.

Signatures: ``serving_<head>`` (``text`` -> that head's outputs, as its single-task export names them) and
``serving_default`` (every head's outputs, keyed ``<head>_<output>``). ``head(name)`` is the head's own client
(an ExportedClassifier, ExportedMultilabel or ExportedRegressor) reading ``serving_<name>``: its predict, score and
evaluate_file work as on a single-task export; ``python -m tfbert.predict/evaluate --head NAME`` use it.
"""
from __future__ import annotations

from tfbert.serving import ExportedModel, client_module

__all__ = ["ExportedMultitask", "CLIENT"]


class ExportedMultitask(ExportedModel):
    """``heads``: the head names, in the export's order."""

    def __init__(self, path, metadata: dict | None = None):
        super().__init__(path, metadata)
        self.heads = list(self.metadata.get("heads", {}))
        if not self.heads:
            raise ValueError(f"{self.path}: a multitask export whose metadata lists no heads.")

    def head(self, name: str) -> ExportedModel:
        """The client of head `name` (ValueError listing the heads for another name); shares the loaded model."""
        if name not in self.heads:
            raise ValueError(f"{self.path}: no head {name!r}; the model's heads are {', '.join(self.heads)}.")
        meta = self.metadata["heads"][name]
        client = client_module(meta["serving"]).CLIENT(self.path, meta)
        client.signature_names = {"serving_default": f"serving_{name}"}
        client._loaded = self._load()
        return client

    def head_outputs(self, texts, batch_size: int = 256) -> dict[str, list[dict]]:
        """Per head, its outputs batch by batch under its own names (as serving_<head> gives them), all from
        serving_default: one tokenization and one encoder pass per batch for every head."""
        signatures = self.signatures
        owner = {f"{name}_{key}": (name, key) for name in self.heads
                 for key in signatures[f"serving_{name}"].structured_outputs}
        per_head = {name: [] for name in self.heads}
        for out in self.outputs(texts, batch_size=batch_size):
            batch = {name: {} for name in self.heads}
            for joint_key, value in out.items():
                name, key = owner[joint_key]
                batch[name][key] = value
            for name in self.heads:
                per_head[name].append(batch[name])
        return per_head

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        """Per text, each head's record (as the head's own client writes it) keyed by head name, from one
        serving_default call per batch."""
        if texts_b is not None:
            raise ValueError(f"{self.path}: a multitask model reads single texts; --text-b/--text-b-column do not "
                             "apply.")
        per_head = {}
        for name, batches in self.head_outputs(texts, batch_size).items():
            client = self.head(name)
            client.outputs = lambda *_, _batches=batches, **__: iter(_batches)  # its answers, already computed
            per_head[name] = client.predict_records(texts, batch_size=batch_size)
        return [{name: records[i] for name, records in per_head.items()} for i in range(len(per_head[self.heads[0]]))]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        columns = {}
        for name in self.heads:
            for key, values in self.head(name).prediction_columns([r[name] for r in records]).items():
                columns[f"{name}_{key}"] = values
        return columns

    def evaluate_file(self, test_file, **_) -> tuple[dict, str]:
        raise ValueError(f"{self.path} is a multitask model: evaluate one head on its own test file with --head NAME "
                         f"(its heads: {', '.join(self.heads)}).")


CLIENT = ExportedMultitask
