"""The client of exported sentence embedders (tfbert.export.embedder, written by `python -m tfbert.embed`).

Signatures: ``serving_default`` (``text`` -> ``embedding`` float32 [batch, hidden], L2-normalised) and
``serving_similarity`` (``text``, ``text_b`` -> ``similarity``, the cosine of the two embeddings).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tfbert.data.regression import numeric_labels
from tfbert.data.tables import ROW_COL, drop_empty_texts, joined_text, read_table, require_columns
from tfbert.serving import ExportedModel, short_floats

__all__ = ["ExportedEmbedder", "CLIENT"]


class ExportedEmbedder(ExportedModel):
    pair_signature = "serving_similarity"  # (text, text_b) -> cosine, through ExportedModel.outputs

    def embed(self, texts, batch_size: int = 256) -> np.ndarray:
        """Unit-length embeddings, float32 ``[n, hidden]``; None (or NaN) texts are sent as ""."""
        parts = [out["embedding"] for out in self.outputs(texts, batch_size=batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def similarity(self, texts, texts_b, batch_size: int = 256) -> np.ndarray:
        """Cosine similarity of each (text, text_b), float32 ``[n]``."""
        parts = [out["similarity"] for out in self.outputs(texts, texts_b, batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        if texts_b is not None:
            return [{"similarity": s} for s in short_floats(self.similarity(texts, texts_b, batch_size))]
        return [{"embedding": short_floats(e)} for e in self.embed(texts, batch_size)]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        if records and "similarity" in records[0]:
            return {"similarity": [r["similarity"] for r in records]}
        return {"embedding": [json.dumps(r["embedding"]) for r in records]}  # one JSON list per cell

    def evaluate_file(self, test_file, *, text_column="text", label_column="label", text_b_column=None,
                      batch_size: int = 256, note=print) -> tuple[dict, str]:
        """STS-style evaluation: Pearson and Spearman correlation of the pairs' cosine similarity with a numeric
        label column (any scale: correlations ignore it)."""
        from tfbert.metrics.regression import correlation

        if not text_b_column:
            raise ValueError("an embedding model is evaluated on sentence pairs: give --text-b-column (and a "
                             "numeric --label-column of similarity scores)")
        df = read_table(test_file)
        for n in df.attrs.get("notes", []):
            note(n)
        text, text_b = (joined_text(df, text_column, test_file),
                        joined_text(df, text_b_column, test_file, "text_b_column"))
        require_columns(df, test_file, {"label_column": label_column})
        lines_before = df.attrs.get("lines_before_data")
        rows = pd.DataFrame({"text": text.to_numpy(), "text_b": text_b.to_numpy(),
                             ROW_COL: np.arange(1, len(df) + 1), "label": df[label_column].to_numpy(dtype=object)})
        notes: list[str] = []
        rows = drop_empty_texts(rows, {"text": "text", "text_b": "text_b"}, test_file, lines_before, notes)
        for n in notes:
            note(n)
        y_true = numeric_labels(rows["label"], test_file, label_column, rows[ROW_COL], lines_before).to_numpy()
        y_pred = self.similarity(rows["text"].tolist(), rows["text_b"].tolist(), batch_size)
        metrics = {"n": int(len(y_true)), "pearson": correlation(y_true, y_pred, "pearson"),
                   "spearman": correlation(y_true, y_pred, "spearman")}
        return metrics, (f"cosine similarity against {label_column} over {metrics['n']} pairs: "
                         f"Pearson {metrics['pearson']:.4f}, Spearman {metrics['spearman']:.4f}")


CLIENT = ExportedEmbedder
