"""SQuAD metrics: exact match and token F1 as the official SQuAD v2.0 evaluation script computes them (0-100).

Answers are normalised as the script does (lower case, punctuation removed, the articles a/an/the removed,
whitespace collapsed); a question scores its best over the gold answers; a question without gold answers has the
gold answer "" (right only when the prediction is empty too). For data with no-answer questions the metrics are
also split into HasAns and NoAns, under the script's key names.
"""
from __future__ import annotations

import collections
import re
import string

import numpy as np

__all__ = ["normalize_answer", "exact_match", "token_f1", "qa_metrics", "best_threshold", "format_qa_report"]

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:  # no-answer: right only if both are empty
        return float(gold_tokens == pred_tokens)
    same = sum((collections.Counter(gold_tokens) & collections.Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _gold(answers: list[str]) -> list[str]:
    # As the script: gold answers that normalise to nothing do not count; none left means "no answer".
    return [a for a in answers if normalize_answer(a)] or [""]


def scores(golds: list[list[str]], predictions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per question (exact, f1), each the best over its gold answers."""
    em = np.array([max(exact_match(p, g) for g in _gold(gs)) for gs, p in zip(golds, predictions)], float)
    f1 = np.array([max(token_f1(p, g) for g in _gold(gs)) for gs, p in zip(golds, predictions)], float)
    return em, f1


def qa_metrics(golds: list[list[str]], predictions: list[str], *, splits: bool | None = None) -> dict:
    """exact and f1 (0-100) over the questions; with no-answer questions among them (or splits=True) also
    HasAns_*/NoAns_* as the official v2.0 script names them."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} questions but {len(predictions)} predictions")
    em, f1 = scores(golds, predictions)
    out = {"exact": 100 * float(em.mean()) if len(em) else 0.0, "f1": 100 * float(f1.mean()) if len(f1) else 0.0,
           "total": len(golds)}
    has = np.array([_gold(g) != [""] for g in golds], bool)
    if splits or (splits is None and not has.all()):
        for name, mask in (("HasAns", has), ("NoAns", ~has)):
            n = int(mask.sum())
            out[f"{name}_exact"] = 100 * float(em[mask].mean()) if n else 0.0
            out[f"{name}_f1"] = 100 * float(f1[mask].mean()) if n else 0.0
            out[f"{name}_total"] = n
    return out


def best_threshold(golds: list[list[str]], spans: list[str], diffs) -> float:
    """The no-answer threshold with the best total F1: a question is answered with its best span when the span's
    score minus the null score is above it, else with "" (the official script's find_best_thresh, on F1)."""
    diffs = np.asarray(diffs, float)
    if not len(diffs):
        return 0.0
    _, f1_span = scores(golds, spans)
    _, f1_null = scores(golds, [""] * len(golds))
    order = np.argsort(-diffs, kind="stable")
    d = diffs[order]
    # Answering the k highest: sum(f1_span of those) + sum(f1_null of the rest), for k = 0..n.
    total = np.concatenate([[0.0], np.cumsum(f1_span[order])]) + \
        np.concatenate([np.cumsum(f1_null[order][::-1])[::-1], [0.0]])
    k = int(np.argmax(total))
    if k == 0:
        return float(d[0] + 1.0)
    if k == len(d):
        return float(d[-1] - 1.0)
    return float((d[k - 1] + d[k]) / 2)


def format_qa_report(metrics: dict) -> str:
    lines = [f"{'':10}{'exact':>8}{'f1':>8}{'questions':>11}",
             f"{'all':10}{metrics['exact']:8.2f}{metrics['f1']:8.2f}{metrics['total']:11d}"]
    for name in ("HasAns", "NoAns"):
        if f"{name}_total" in metrics:
            lines.append(f"{name:10}{metrics[name + '_exact']:8.2f}{metrics[name + '_f1']:8.2f}"
                         f"{metrics[name + '_total']:11d}")
    if "threshold" in metrics:
        lines.append(f"no-answer threshold (tuned on validation): {metrics['threshold']:.4f}")
    return "\n".join(lines)
