"""The client of exported taggers (tfbert.export.tagger): entities with character offsets, and evaluation.

Signature ``serving_default(text)`` -> ``entity_text``, ``entity_type``, ``entity_start``, ``entity_end``,
``entity_score`` (each [batch, max_entities], padded) and ``num_entities``; tag names in the metadata.
"""
from __future__ import annotations

import json

from tfbert.serving import ExportedModel, read_labels

__all__ = ["ExportedTagger", "tags_from_entities", "CLIENT"]


class ExportedTagger(ExportedModel):
    """``tags`` are the tag names the model predicts (O, B-type, I-type)."""

    def __init__(self, path, metadata: dict | None = None):
        super().__init__(path, metadata)
        self.tags = read_labels(self.path, self.metadata)

    def entities(self, texts, batch_size: int = 256) -> list[list[dict]]:
        """Per text, its entities: {"text", "type", "start", "end", "score"} with text[start:end] == entity text
        (Python string offsets). None (or NaN) texts are sent as ""."""
        found = []
        for out in self.outputs(texts, batch_size=batch_size):
            for i, n in enumerate(out["num_entities"]):
                found.append([{"text": out["entity_text"][i, j].decode("utf-8"),
                               "type": out["entity_type"][i, j].decode("utf-8"),
                               "start": int(out["entity_start"][i, j]), "end": int(out["entity_end"][i, j]),
                               "score": round(float(out["entity_score"][i, j]), 6)} for j in range(int(n))])
        return found

    def predict_records(self, texts, texts_b=None, batch_size: int = 256) -> list[dict]:
        if texts_b is not None:
            raise ValueError(f"{self.path}: a tagger reads single texts; --text-b/--text-b-column do not apply.")
        return [{"entities": e} for e in self.entities(texts, batch_size)]

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        return {"entities": [json.dumps(r["entities"], ensure_ascii=False) for r in records]}

    def evaluate_file(self, test_file, *, batch_size: int = 256, note=print, **_columns) -> tuple[dict, str]:
        """Entity-level precision/recall/F1 (seqeval) and token accuracy on a tagged file (CoNLL or JSONL, as
        training reads them). Each sentence is served as its words joined by spaces; a predicted entity tags the
        words its character span covers."""
        from tfbert.data.tagged import read_sentences
        from tfbert.metrics.entities import format_ner_report

        if "," in str(_columns.get("text_column") or ""):
            raise ValueError(f"--text-column {_columns['text_column']}: a tagger's test file is CoNLL or JSONL "
                             "(words and their tags), so there are no text columns to join; drop --text-column.")
        metrics, _ = self.score(read_sentences(test_file), batch_size)
        return metrics, format_ner_report(metrics)

    def score(self, sentences, batch_size: int = 256) -> tuple[dict, list[list[str]]]:
        """Entity metrics of the export on tagged sentences (``tokens`` and ``tags`` each), and the predicted word
        tags. Each sentence is served as its words joined by spaces; a predicted entity tags the words its
        character span covers. `evaluate_file` and the training run's test report (tfbert.fit) both score this way."""
        from tfbert.metrics.entities import entity_metrics

        texts, spans = [], []
        for s in sentences:
            offsets, at = [], 0
            for word in s.tokens:
                offsets.append((at, at + len(word)))
                at += len(word) + 1
            texts.append(" ".join(s.tokens))
            spans.append(offsets)
        predicted = [tags_from_entities(words, found) for words, found in zip(spans, self.entities(texts, batch_size))]
        return entity_metrics([s.tags for s in sentences], predicted), predicted


def tags_from_entities(word_spans: list[tuple[int, int]], entities: list[dict]) -> list[str]:
    """BIO tags of words (given as character spans) from entities with character spans: the first word an
    entity overlaps gets B-type, the others I-type, words outside every entity O."""
    tags = ["O"] * len(word_spans)
    for e in entities:
        inside = [i for i, (a, b) in enumerate(word_spans) if a < e["end"] and e["start"] < b]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + e["type"]
    return tags


CLIENT = ExportedTagger
