"""The client of exported classifiers (tfbert.export.classifier): Python calls, predictions and evaluation.

Signatures: ``serving_default`` (``text`` -> ``probabilities``, ``label``, ``label_id``), optionally
``serving_pairs`` (``text``, ``text_b`` -> the same); label names in the metadata (or ``assets/labels.txt``).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from tfbert.data.classification import read_labelled_table
from tfbert.data.tables import ROW_COL, DataError, is_missing_label, normalize_labels, row_refs
from tfbert.serving import ExportedModel, read_labels, short_floats

__all__ = ["ExportedClassifier", "label_ids", "CLIENT"]

_MAX_LISTED = 20


class ExportedClassifier(ExportedModel):
    """``labels`` are the label names (``labels[label_id]``), ``has_pairs`` tells whether the model has the
    ``serving_pairs`` signature, ``path`` is the resolved version directory."""

    def __init__(self, path, metadata: dict | None = None):
        super().__init__(path, metadata)
        self.labels = read_labels(self.path, self.metadata)

    def predict(self, texts, texts_b=None, batch_size: int = 256):
        """Classify ``texts`` (or (text, text_b) pairs); returns ``(probabilities, label_ids, labels)``.

        ``probabilities`` is float32 ``[n, n_classes]``, ``label_ids`` int64 ``[n]``, ``labels`` a list of
        label names. None (or NaN) texts are sent as "". Runs the signature in batches of ``batch_size``.
        """
        probs, ids, names = [], [], []
        for out in self.outputs(texts, texts_b, batch_size):
            probs.append(out["probabilities"].astype(np.float32, copy=False))
            ids.append(out["label_id"].astype(np.int64, copy=False))
            names += [s.decode("utf-8") for s in out["label"].tolist()]
        if not probs:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0,), np.int64), []
        probabilities = np.concatenate(probs)
        if probabilities.shape[1] != len(self.labels):
            raise ValueError(f"{self.path}: model outputs {probabilities.shape[1]} probabilities but the export "
                             f"lists {len(self.labels)} labels.")
        return probabilities, np.concatenate(ids), names

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        if texts_b is None and self.has_pairs:
            print("note: the model was trained on sentence pairs; pass the second texts with "
                  "--text-b/--text-b-column (classifying single texts).", file=sys.stderr)
        probs, _, predicted = self.predict(texts, texts_b, batch_size=batch_size)
        return [{"label": label, "probabilities": dict(zip(self.labels, p))}
                for label, p in zip(predicted, short_floats(probs))]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        columns = {"label": [r["label"] for r in records]}
        for name in self.labels:
            columns[f"p_{name}"] = [r["probabilities"][name] for r in records]
        return columns

    def evaluate_file(self, test_file, *, text_column="text", label_column="label", text_b_column=None,
                      batch_size: int = 256, note=print) -> tuple[dict, str]:
        """Accuracy, macro/weighted F1, per-class scores, the confusion matrix and the quality of the probabilities
        (log-loss, Brier score, expected calibration error and its reliability bins) on a labelled table; the file,
        its columns and labels are checked before the model is loaded. Returns (metrics, text report)."""
        from tfbert.metrics.classification import format_report

        notes: list[str] = []
        rows = read_labelled_table(test_file, text_column=text_column, label_column=label_column,
                                   text_b_column=text_b_column, notes=notes)
        for n in notes:
            note(n)
        y_true = label_ids(rows["label"], self.labels, test_file, label_column, rows=rows[ROW_COL],
                           lines_before_data=rows.attrs["lines_before_data"])
        if self.has_pairs and not text_b_column:
            note("the model was trained on sentence pairs; pass --text-b-column to evaluate pairs "
                 "(evaluating single texts).")
        metrics, _ = self.score(rows["text"].tolist(), rows["text_b"].tolist() if text_b_column else None,
                                y_true.to_numpy(), batch_size=batch_size)
        return metrics, format_report(metrics)

    def score(self, texts, texts_b, y_true, batch_size: int = 256) -> tuple[dict, np.ndarray]:
        """The task's test metrics of the export's own answers (its temperature and decision threshold are applied
        in its graph) against ``y_true`` (indices into ``labels``), and the probabilities. `evaluate_file` and the
        training run's test report (tfbert.fit) both score this way."""
        from tfbert.metrics.classification import classification_metrics, probability_metrics

        probs, y_pred, _ = self.predict(texts, texts_b, batch_size=batch_size)
        y_true = np.asarray(y_true)
        return {**classification_metrics(y_true, y_pred, self.labels), **probability_metrics(y_true, probs)}, probs

    def write_plots(self, metrics: dict, directory) -> list:
        """confusion_matrix.png and reliability.png of `evaluate_file`'s metrics in `directory`."""
        from pathlib import Path

        from tfbert.metrics.plots import plot_confusion_matrix, plot_reliability

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [plot_confusion_matrix(metrics["confusion_matrix"], self.labels, directory / "confusion_matrix.png"),
                plot_reliability(metrics["reliability"], directory / "reliability.png", ece=metrics["ece"])]


def label_ids(values: pd.Series, labels: list[str], source, column: str, *, rows=None,
              lines_before_data=None) -> pd.Series:
    """Map a label column to the model's label ids.

    Labels are compared as strings after the normalisation training applies (integer-valued
    numbers such as 1, 1.0 or "1" all become "1"). Empty labels or labels the model does not
    know raise a DataError that lists them with their rows; ``rows`` are the 1-based data row
    numbers of ``values`` in the file (default 1..n).
    """
    values = values.reset_index(drop=True)
    rows = pd.Series(range(1, len(values) + 1) if rows is None else list(rows))
    missing = values.map(is_missing_label).astype(bool)
    if missing.any():
        raise DataError(
            f"{source}: label column {column!r} is empty in {int(missing.sum())} of {len(values)} rows: "
            f"{row_refs(rows[missing], lines_before_data)}. Fill in the labels or remove those rows."
        )
    names, _ = normalize_labels(values, source, column)
    known = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(names) - set(known))
    if unknown:
        bad = names.isin(unknown)
        raise DataError(
            f"{source}: labels the model does not know: {', '.join(map(repr, unknown[:_MAX_LISTED]))}"
            f"{' ...' if len(unknown) > _MAX_LISTED else ''} ({int(bad.sum())} rows: "
            f"{row_refs(rows[bad], lines_before_data)}). The model's labels are "
            f"{', '.join(map(repr, labels[:_MAX_LISTED]))}{' ...' if len(labels) > _MAX_LISTED else ''}. "
            f"Check --label-column, or fix or remove those rows."
        )
    return names.map(known).astype("int64")


CLIENT = ExportedClassifier
