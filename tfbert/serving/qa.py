"""The client of exported QA models (tfbert.export.qa): answers with character offsets, and SQuAD evaluation.

Signature ``serving_default(question, context)`` -> ``answer``, ``start``, ``end``, ``score`` (and ``has_answer`` for
models trained with no-answer questions). `python -m tfbert.predict` sends TEXT (or --text-column) as the questions
and --text-b (or --text-b-column) as their contexts; `python -m tfbert.evaluate` reads SQuAD JSON or JSONL.
"""
from __future__ import annotations

from tfbert.progress import Progress
from tfbert.serving import ExportedModel, as_strings

__all__ = ["ExportedQa", "CLIENT"]


class ExportedQa(ExportedModel):
    """``no_answer`` tells whether the model may abstain (``has_answer``)."""

    @property
    def no_answer(self) -> bool:
        return bool(self.metadata.get("no_answer"))

    def answers(self, questions, contexts, batch_size: int = 64) -> list[dict]:
        """Per question: {"answer", "start", "end", "score"[, "has_answer"]}, with context[start:end] == answer
        (Python string offsets; -1 and "" when there is no answer). None (or NaN) values are sent as ""."""
        import tensorflow as tf

        questions, contexts = as_strings(questions, "questions"), as_strings(contexts, "contexts")
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts; give one context per question.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        fn, found = self.signatures["serving_default"], []
        with Progress("answering", len(questions), steps=-(-len(questions) // batch_size), unit="questions") as progress:
            for at in range(0, len(questions), batch_size):
                out = fn(question=tf.constant(questions[at:at + batch_size], tf.string),
                         context=tf.constant(contexts[at:at + batch_size], tf.string))
                out = {k: v.numpy() for k, v in out.items()}
                for i in range(len(out["answer"])):
                    record = {"answer": out["answer"][i].decode("utf-8", "replace"), "start": int(out["start"][i]),
                              "end": int(out["end"][i]), "score": round(float(out["score"][i]), 6)}
                    if "has_answer" in out:
                        record["has_answer"] = bool(out["has_answer"][i])
                    found.append(record)
                progress.update(len(out["answer"]))
        return found

    def predict_records(self, texts, texts_b=None, batch_size: int = 64) -> list[dict]:
        if texts_b is None:
            raise ValueError(f"{self.path}: a QA model answers a question about a context: give the questions as TEXT "
                             "and one --text-b CONTEXT each (or --text-column and --text-b-column with --input-file).")
        return self.answers(texts, texts_b, batch_size)

    def prediction_columns(self, records: list[dict]) -> dict[str, list]:
        keys = ["answer", "start", "end", "score"] + (["has_answer"] if self.no_answer else [])
        return {k: [r[k] for r in records] for k in keys}

    def evaluate_file(self, test_file, *, batch_size: int = 64, note=print, **_columns) -> tuple[dict, str]:
        """SQuAD exact match and F1 (0-100; HasAns/NoAns for no-answer data) on a SQuAD JSON or JSONL file, read and
        checked as training reads it, at the threshold in the export."""
        from tfbert.data.qa import read_qa_file
        from tfbert.metrics.qa import format_qa_report

        notes: list[str] = []
        questions = read_qa_file(test_file, notes=notes)
        for n in notes:
            note(n)
        metrics, _ = self.score(questions, batch_size)
        return metrics, format_qa_report(metrics)

    def score(self, questions, batch_size: int = 64) -> tuple[dict, list[dict]]:
        """SQuAD metrics of the export's answers to ``questions`` (``question``, ``context``, ``answer_texts``
        each) at the threshold in the export, and the answers: `evaluate_file` and the training run's test report
        (tfbert.fit) both score this way."""
        from tfbert.metrics.qa import qa_metrics

        found = self.answers([q.question for q in questions], [q.context for q in questions], batch_size)
        metrics = qa_metrics([q.answer_texts for q in questions], [f["answer"] for f in found],
                             splits=True if self.no_answer else None)
        if self.no_answer:
            metrics["threshold"] = float(self.metadata.get("threshold", 0.0))
        return metrics, found


CLIENT = ExportedQa
