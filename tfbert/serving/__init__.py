"""Using an exported tfbert model from Python: find it, read what it says about itself, load its task's client.

The export contract: ``<base>/<name>/<version>/`` (integer versions, TF Serving layout) with its signatures and
``assets.extra/tfbert.json`` (task, serving kind, label or tag names, settings, test metrics, versions). Each
serving kind (the metadata's "serving", written by its exporter in tfbert.export) has a client module here, listed
in CLIENTS, whose ``CLIENT`` class wraps the signatures for Python callers and for the predict/evaluate CLIs.

TensorFlow is imported only when a model is loaded, so path, metadata and data checks answer in milliseconds.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from tfbert.progress import Progress

__all__ = ["resolve_model_dir", "read_metadata", "read_labels", "ExportedModel", "load", "as_strings", "short_floats"]

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
METADATA_FILE = Path("assets.extra") / "tfbert.json"
# Serving kind (the export metadata's "serving") -> its client module.
CLIENTS = {"classifier": "tfbert.serving.classifier", "tagger": "tfbert.serving.tagger",
           "regressor": "tfbert.serving.regressor", "multilabel": "tfbert.serving.multilabel",
           "embedder": "tfbert.serving.embedder", "qa": "tfbert.serving.qa",
           "multitask": "tfbert.serving.multitask"}
# Exports written before the metadata file existed name their outputs in one asset file.
_LEGACY_ASSETS = {"labels.txt": "classifier", "tags.txt": "tagger"}


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit()  # TF Serving loads only integer-named version folders


def _is_saved_model(d: Path) -> bool:
    return any((d / f).is_file() for f in SAVED_MODEL_FILES)


def resolve_model_dir(path) -> Path:
    """Return the SavedModel directory for ``path``.

    ``path`` may be a version directory (holds saved_model.pb) or a model base directory, for
    which the highest integer-named version that holds a saved_model.pb is chosen (non-integer
    entries such as ``runs/`` or hidden temp dirs are ignored, as TF Serving does; an integer
    folder still being written has no saved_model.pb yet and is skipped).
    Raises FileNotFoundError naming ``path`` when nothing loadable is there.
    """
    p = Path(path)
    if p.is_file() and p.name in SAVED_MODEL_FILES:
        return p.parent
    if not p.exists():
        raise FileNotFoundError(f"model directory {p} does not exist.")
    if not p.is_dir():
        raise FileNotFoundError(f"{p} is not a directory; pass a SavedModel directory or a model base directory.")
    if _is_saved_model(p):
        return p
    versions = sorted((d for d in p.iterdir() if d.is_dir() and _is_version(d.name)),
                      key=lambda d: int(d.name), reverse=True)
    for d in versions:
        if _is_saved_model(d):
            return d
    if versions:
        raise FileNotFoundError(
            f"{p}: none of its version folders ({', '.join(d.name for d in reversed(versions))}) "
            f"contains a saved_model.pb."
        )
    raise FileNotFoundError(
        f"{p}: no saved_model.pb and no integer version folders (like {p / '1'}) with one. "
        f"Pass a SavedModel directory or a model base directory <base>/<name>."
    )


def read_metadata(model_dir) -> dict:
    """The export's assets.extra/tfbert.json; for an export without one, what its asset files tell (serving kind
    and label or tag names)."""
    d = resolve_model_dir(model_dir)
    f = d / METADATA_FILE
    if f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: not valid JSON ({e.msg}, line {e.lineno}).") from None
    for name, kind in _LEGACY_ASSETS.items():
        if (d / "assets" / name).is_file():
            key = "labels" if kind == "classifier" else "tags"
            return {"serving": kind, key: _read_lines(d / "assets" / name)}
    raise FileNotFoundError(f"{d}: no {METADATA_FILE} and no assets/labels.txt or assets/tags.txt: not a tfbert "
                            "export (or one copied without its assets).")


def read_labels(model_dir, metadata: dict | None = None) -> list[str]:
    """The output names of an export in id order: label names (classifiers) or tag names (taggers), from
    `metadata` if given (a multitask export's head), else the export's own."""
    meta = read_metadata(model_dir) if metadata is None else metadata
    names = meta.get("labels") or meta.get("tags")
    if not names:
        raise ValueError(f"{resolve_model_dir(model_dir)}: the export lists no label or tag names.")
    return list(names)


def _read_lines(f: Path) -> list[str]:
    # Only line ends are stripped: a label may legitimately contain spaces.
    lines = f.read_text(encoding="utf-8").splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"{f} is empty; it must hold one name per line.")
    return lines


def client_module(kind: str):
    """The client module of a serving kind (CLIENTS)."""
    if kind not in CLIENTS:
        raise ValueError(f"unknown serving kind {kind!r} in the export's metadata; this tfbert knows "
                         f"{', '.join(CLIENTS)}. Upgrade tfbert, or check {METADATA_FILE}.")
    return importlib.import_module(CLIENTS[kind])


def short_floats(a) -> list:
    """float32 values as the shortest decimals that round-trip (0.8, not 0.800000011920929), for JSON output."""
    import numpy as np

    return np.asarray(a, dtype=np.float32).astype(str).astype(float).tolist()


def as_strings(values, what: str) -> list:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single {type(values).__name__}.")
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):  # NaN: pandas' missing cell
            out.append("")
        elif isinstance(v, (str, bytes)):
            out.append(v)
        else:
            out.append(str(v))
    return out


class ExportedModel:
    """A loaded export: ``path`` (the version directory), ``metadata`` and the signatures, loaded on first use."""

    def __init__(self, path, metadata: dict | None = None):
        self.path = resolve_model_dir(path)
        self.metadata = read_metadata(self.path) if metadata is None else metadata
        self._loaded = None

    # Signature name -> the SavedModel's: a multitask export's head client (tfbert.serving.multitask) reads its
    # serving_<head> as its serving_default. Empty: the SavedModel's own names.
    signature_names: dict[str, str] = {}

    @property
    def signatures(self):
        if self.signature_names:
            loaded = self._load().signatures
            return {mine: loaded[theirs] for mine, theirs in self.signature_names.items()}
        return self._load().signatures

    def _load(self):
        if self._loaded is None:
            import tensorflow as tf
            import tensorflow_text  # noqa: F401  registers the tokenizer ops the exported graph uses

            try:
                self._loaded = tf.saved_model.load(str(self.path))
            except (IndexError, ValueError, OSError, tf.errors.OpError) as e:  # truncated or damaged files
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise OSError(f"{self.path}: the SavedModel cannot be loaded ({type(e).__name__}: {first}); "
                              "its files may be incomplete or damaged (copy the version folder again)") from e
            if "serving_default" not in self._loaded.signatures:
                raise ValueError(f"{self.path}: SavedModel has no 'serving_default' signature (signatures: "
                                 f"{', '.join(self._loaded.signatures) or 'none'}).")
        return self._loaded

    # The signature that takes (text, text_b): a model trained on sentence pairs has serving_pairs; a kind whose
    # pairs mean something else (the embedder's serving_similarity) names its own.
    pair_signature = "serving_pairs"

    @property
    def has_pairs(self) -> bool:
        """Whether the export has its pair signature (serving_pairs: it was trained on sentence pairs)."""
        listed = self.metadata.get("signatures")
        return self.pair_signature in (listed if listed is not None else self.signatures)

    def outputs(self, texts, texts_b=None, batch_size: int = 256):
        """Runs serving_default (the pair signature with ``texts_b``) over ``texts`` in batches of ``batch_size`` and
        yields each batch's outputs as numpy arrays. None (or NaN) texts are sent as "". Over more than a few
        batches, progress goes to stderr (tfbert.progress; off within `tfbert.progress.quiet()`)."""
        import tensorflow as tf

        texts = as_strings(texts, "texts")
        if texts_b is not None:
            texts_b = as_strings(texts_b, "texts_b")
            if not self.has_pairs:
                raise ValueError(f"{self.path}: model has no {self.pair_signature!r} signature (it was not trained "
                                 f"on sentence pairs), so texts_b cannot be used.")
            if len(texts_b) != len(texts):
                raise ValueError(f"texts has {len(texts)} items but texts_b has {len(texts_b)}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        fn = self.signatures["serving_default" if texts_b is None else self.pair_signature]
        with Progress("predicting", len(texts), steps=-(-len(texts) // batch_size)) as progress:
            for start in range(0, len(texts), batch_size):
                batch = texts[start:start + batch_size]
                inputs = {"text": tf.constant(batch, tf.string)}
                if texts_b is not None:
                    inputs["text_b"] = tf.constant(texts_b[start:start + batch_size], tf.string)
                out = {k: v.numpy() for k, v in fn(**inputs).items()}
                progress.update(len(batch))
                yield out

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        """One JSON-able prediction per text (what `python -m tfbert.predict` prints)."""
        raise NotImplementedError

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        """The predictions as table columns (what `python -m tfbert.predict --output` adds to the rows)."""
        raise NotImplementedError

    def write_plots(self, metrics: dict, directory) -> list:
        """PNG plots of `evaluate_file`'s metrics in `directory` (`python -m tfbert.evaluate --plots`); returns their
        paths. Default: none."""
        return []


def load(path, metadata: dict | None = None, head: str | None = None) -> ExportedModel:
    """Load the export at ``path`` (a version directory or a model base directory) with its task's client;
    ``metadata``: what the export says about itself, when it is not (yet) in its assets.extra/tfbert.json.
    ``head``: one head of a multitask export, through that head's own client (ValueError for another export)."""
    metadata = read_metadata(path) if metadata is None else metadata
    client = client_module(metadata.get("serving", "classifier")).CLIENT(path, metadata)
    if head is None:
        return client
    if not hasattr(client, "head"):
        raise ValueError(f"{client.path}: a single-task model ({metadata.get('task', metadata.get('serving'))}) has "
                         f"no heads to choose from; leave out the head ({head!r}).")
    return client.head(head)
