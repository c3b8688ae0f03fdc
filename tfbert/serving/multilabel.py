"""The client of exported multi-label classifiers (tfbert.export.multilabel): predictions and evaluation.

Signature ``serving_default(text)`` -> ``probabilities`` [batch, labels], ``labels`` [batch, max_labels] (the
predicted set, padded with "") and ``num_labels``; label names and thresholds in the metadata.
"""
from __future__ import annotations

import json

import numpy as np

from tfbert.data.multilabel import multi_hot, parse_label_columns, read_label_sets
from tfbert.data.tables import DataError, joined_text, read_table, row_refs
from tfbert.serving import ExportedModel, read_labels, short_floats

__all__ = ["ExportedMultilabel", "CLIENT"]


class ExportedMultilabel(ExportedModel):
    """``labels`` are the label names (the columns of ``probabilities``), ``thresholds`` their decision thresholds."""

    def __init__(self, path, metadata: dict | None = None):
        super().__init__(path, metadata)
        self.labels = read_labels(self.path, self.metadata)
        self.thresholds = [float(t) for t in self.metadata.get("thresholds", [])]

    def predict(self, texts, batch_size: int = 256) -> tuple[np.ndarray, list[list[str]]]:
        """``(probabilities float32 [n, labels], the predicted label set of each text)``; None/NaN texts are sent
        as ""."""
        probs, sets = [], []
        for out in self.outputs(texts, batch_size=batch_size):
            probs.append(out["probabilities"].astype(np.float32, copy=False))
            names, counts = out["labels"], out["num_labels"]
            sets += [[names[i, j].decode("utf-8") for j in range(int(n))] for i, n in enumerate(counts)]
        if not probs:
            return np.zeros((0, len(self.labels)), np.float32), []
        probabilities = np.concatenate(probs)
        if probabilities.shape[1] != len(self.labels):
            raise ValueError(f"{self.path}: model outputs {probabilities.shape[1]} probabilities but the export "
                             f"lists {len(self.labels)} labels.")
        return probabilities, sets

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        if texts_b is not None:
            raise ValueError(f"{self.path}: a multi-label model reads single texts; --text-b/--text-b-column do not "
                             "apply.")
        probs, sets = self.predict(texts, batch_size)
        return [{"labels": names, "probabilities": dict(zip(self.labels, p))}
                for names, p in zip(sets, short_floats(probs))]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        columns = {"labels": [json.dumps(r["labels"], ensure_ascii=False) for r in records]}
        for name in self.labels:
            columns[f"p_{name}"] = [r["probabilities"][name] for r in records]
        return columns

    def evaluate_file(self, test_file, *, text_column="text", label_column="label", text_b_column=None,
                      batch_size: int = 256, note=print) -> tuple[dict, str]:
        """Micro/macro F1, per-label scores and subset accuracy on a labelled table, with the export's thresholds.
        The labels are read in the format the model was trained on (the export's --label-separator or
        --label-columns settings; else JSON lists in `label_column`); the file is checked before TensorFlow loads.
        Returns (metrics, text report)."""
        from tfbert.metrics.multilabel import format_multilabel_report

        if text_b_column:
            raise ValueError("a multi-label model reads single texts; --text-b-column does not apply.")
        settings = self.metadata.get("settings", {})
        df = read_table(test_file)
        for n in df.attrs.get("notes", []):
            note(n)
        lines_before = df.attrs.get("lines_before_data")
        texts = joined_text(df, text_column, test_file)
        label_sets = read_label_sets(df, test_file, lines_before, label_column=label_column,
                                     label_separator=settings.get("label_separator"),
                                     label_columns=parse_label_columns(settings.get("label_columns")))
        empty = ~texts.str.strip().astype(bool)
        if empty.all():
            raise DataError(f"{test_file}: the text in {text_column!r} is empty in every row.")
        if empty.any():  # training drops them from test files too
            note(f"skipped {int(empty.sum())} of {len(df)} rows with empty text: "
                 f"{row_refs(np.flatnonzero(empty.to_numpy()) + 1, lines_before)}.")
        keep = ~empty
        unknown = keep & label_sets.map(lambda names: bool(set(names) - set(self.labels))).astype(bool)
        if unknown.any():
            names = sorted({x for s in label_sets[unknown] for x in s} - set(self.labels))
            rows = np.flatnonzero(unknown.to_numpy()) + 1
            raise DataError(f"{test_file}: labels the model does not know: {', '.join(map(repr, names[:20]))} "
                            f"({int(unknown.sum())} rows: {row_refs(rows, lines_before)}). "
                            f"The model's labels are {', '.join(map(repr, self.labels[:20]))}. Fix or remove "
                            "those rows.")
        metrics, _ = self.score(texts[keep].tolist(), multi_hot(label_sets[keep].tolist(), self.labels),
                                batch_size=batch_size)
        return metrics, format_multilabel_report(metrics)

    def score(self, texts, targets, batch_size: int = 256) -> tuple[dict, np.ndarray]:
        """The task's test metrics of the export's predicted label sets (its thresholds applied in its graph)
        against ``targets`` (multi-hot, [texts, labels]), and the probabilities: `evaluate_file` and the training
        run's test report (tfbert.fit) both score this way."""
        from tfbert.metrics.multilabel import multilabel_metrics

        probs, sets = self.predict(texts, batch_size=batch_size)
        return multilabel_metrics(np.asarray(targets), multi_hot(sets, self.labels), self.labels), probs


CLIENT = ExportedMultilabel
