"""The client of exported regressors (tfbert.export.regressor): Python calls, predictions and evaluation.

Signatures: ``serving_default`` (``text`` -> ``score``), optionally ``serving_pairs`` (``text``, ``text_b`` ->
``score``); scores in the label's own units. The train labels' mean and std are in the metadata (``target``).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from tfbert.data.regression import numeric_labels
from tfbert.data.tables import ROW_COL, drop_empty_texts, joined_text, read_table, require_columns
from tfbert.serving import ExportedModel

__all__ = ["ExportedRegressor", "CLIENT"]


class ExportedRegressor(ExportedModel):
    """``has_pairs`` tells whether the model has the ``serving_pairs`` signature; ``target`` is the train labels'
    ``{"mean", "std"}``; ``path`` is the resolved version directory."""

    @property
    def target(self) -> dict:
        return dict(self.metadata.get("target", {}))

    def predict(self, texts, texts_b=None, batch_size: int = 256) -> np.ndarray:
        """Scores (float32 ``[n]``, in the label's units) of ``texts`` or of (text, text_b) pairs. None (or NaN)
        texts are sent as "". Runs the signature in batches of ``batch_size``."""
        scores = [out["score"].astype(np.float32, copy=False) for out in self.outputs(texts, texts_b, batch_size)]
        return np.concatenate(scores) if scores else np.zeros((0,), np.float32)

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        if texts_b is None and self.has_pairs:
            print("note: the model was trained on sentence pairs; pass the second texts with "
                  "--text-b/--text-b-column (scoring single texts).", file=sys.stderr)
        scores = self.predict(texts, texts_b, batch_size=batch_size)
        # float32 -> shortest decimal that round-trips (0.8, not 0.800000011920929).
        return [{"score": s} for s in scores.astype(str).astype(float).tolist()]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        return {"score": [r["score"] for r in records]}

    def evaluate_file(self, test_file, *, text_column="text", label_column="label", text_b_column=None,
                      batch_size: int = 256, note=print) -> tuple[dict, str]:
        """Pearson, Spearman, MAE and RMSE (label units) on a table with a numeric label column; the file, its
        columns and labels are checked before the model is loaded. Returns (metrics, text report)."""
        from tfbert.metrics.regression import format_regression_report

        df = read_table(test_file)
        for n in df.attrs.get("notes", []):
            note(n)
        rows = pd.DataFrame({"text": joined_text(df, text_column, test_file)})
        if text_b_column:
            rows["text_b"] = joined_text(df, text_b_column, test_file, "text_b_column")
        require_columns(df, test_file, {"label_column": label_column})
        lines_before = df.attrs.get("lines_before_data")
        rows[ROW_COL] = np.arange(1, len(df) + 1)
        rows["label"] = df[label_column].to_numpy(dtype=object)
        notes: list[str] = []
        # Training drops rows with empty text from test files too; do the same so numbers agree.
        rows = drop_empty_texts(rows, {c: c for c in ("text", "text_b") if c in rows}, test_file, lines_before, notes)
        for n in notes:
            note(n)
        y_true = numeric_labels(rows["label"], test_file, label_column, rows[ROW_COL], lines_before)
        if self.has_pairs and not text_b_column:
            note("the model was trained on sentence pairs; pass --text-b-column to evaluate pairs "
                 "(evaluating single texts).")
        metrics, _ = self.score(rows["text"].tolist(), rows["text_b"].tolist() if text_b_column else None,
                                y_true.to_numpy(), batch_size=batch_size)
        return metrics, format_regression_report(metrics)

    def score(self, texts, texts_b, labels, batch_size: int = 256) -> tuple[dict, np.ndarray]:
        """The task's test metrics (label units) of the export's scores against ``labels``, and the scores:
        `evaluate_file` and the training run's test report (tfbert.fit) both score this way."""
        from tfbert.metrics.regression import regression_metrics

        y_pred = self.predict(texts, texts_b, batch_size=batch_size)
        return regression_metrics(np.asarray(labels, np.float64), y_pred), y_pred


CLIENT = ExportedRegressor
