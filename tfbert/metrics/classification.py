"""Classification metrics (sklearn), probability quality (log-loss, Brier score, expected calibration error) and
their text report. No TensorFlow here: the evaluate CLI shares it."""
from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "probability_metrics", "expected_calibration_error", "reliability_bins",
           "format_report", "ECE_BINS"]

ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al. 2017 use 15)


# --------------------------------------------------------------------------- metrics


def classification_metrics(y_true, y_pred, labels) -> dict:
    """Metrics for integer label ids ``y_true``/``y_pred``; ``labels[i]`` names id ``i``.

    Returns ``{"n", "accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix", "labels"}``:
    ``per_class[name] = {"precision", "recall", "f1", "support"}`` for every label (from sklearn's
    classification_report, zero_division=0); ``confusion_matrix[i][j]`` counts true ``i`` predicted ``j``.
    ``macro_f1`` averages over the classes that occur in ``y_true`` or ``y_pred`` (what
    ``sklearn.metrics.f1_score(average="macro")`` does without ``labels``): a class absent from both
    has no defined F1 and would otherwise pull the average down by an arbitrary 0.
    """
    from sklearn.metrics import classification_report, confusion_matrix, f1_score  # slow import, keep lazy

    labels = [str(x) for x in labels]
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}.")
    if len(y_true) == 0:
        raise ValueError("no examples: metrics need at least one (y_true, y_pred) pair.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"label names must be unique, got {labels}.")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name} must hold integer label ids, got dtype {y.dtype}.")
        bad = sorted({int(v) for v in y if not 0 <= v < len(labels)})
        if bad:
            raise ValueError(f"{name} has ids {bad[:10]} outside 0..{len(labels) - 1} ({len(labels)} labels).")

    ids = list(range(len(labels)))
    report = classification_report(
        y_true, y_pred, labels=ids, target_names=labels, output_dict=True, zero_division=0
    )
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(report[name]["precision"]),
                "recall": float(report[name]["recall"]),
                "f1": float(report[name]["f1-score"]),
                "support": int(report[name]["support"]),
            }
            for name in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": labels,
    }


def _checked_probabilities(y_true, probabilities):
    """(y_true int array, float64 probabilities with rows summing to 1) after shape and range checks."""
    y_true = np.asarray(y_true).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(y_true) or p.shape[1] < 2:
        raise ValueError(f"probabilities must be [n, classes>=2] for {len(y_true)} labels, got shape {p.shape}.")
    if len(y_true) == 0:
        raise ValueError("no examples: probability metrics need at least one.")
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= p.shape[1]:
        raise ValueError(f"y_true must hold label ids in 0..{p.shape[1] - 1}, got {sorted(set(y_true.tolist()))[:10]}.")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative.")
    # float32 softmax rows sum to 1 only up to rounding; sklearn's log_loss checks the sums.
    return y_true, p / p.sum(axis=1, keepdims=True)


def reliability_bins(y_true, probabilities, bins: int = ECE_BINS) -> dict:
    """Top-label reliability: each example's confidence is its largest probability, and it is right when that
    class is the true one. Confidences fall into `bins` equal-width bins ((0, 1/bins], ..., (1 - 1/bins, 1]).
    Returns {"edges", "count", "confidence", "accuracy"}: per bin the count and the mean confidence and accuracy
    (None for an empty bin)."""
    y_true, p = _checked_probabilities(y_true, probabilities)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lower, upper]
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct.astype(float), minlength=bins) / count
    either = lambda a: [None if c == 0 else float(v) for v, c in zip(a, count)]  # noqa: E731
    return {"edges": edges.tolist(), "count": count.tolist(),
            "confidence": either(mean_conf), "accuracy": either(accuracy)}


def expected_calibration_error(y_true, probabilities, bins: int = ECE_BINS) -> float:
    """Top-label ECE: sum over the confidence bins of (share of examples) x |accuracy - mean confidence|.
    0 for probabilities that are right as often as they say; larger for over- or under-confident ones."""
    r = reliability_bins(y_true, probabilities, bins)
    n = sum(r["count"])
    return float(sum(c / n * abs(a - m) for c, a, m in zip(r["count"], r["accuracy"], r["confidence"]) if c))


def probability_metrics(y_true, probabilities) -> dict:
    """How good the probabilities are, for label ids `y_true` and probabilities [n, classes]:
    ``log_loss`` (mean negative log-likelihood of the true label), ``brier_score`` (binary: mean squared error of
    the second label's probability; multi-class: mean over examples of the squared distance from the one-hot label,
    range 0-2; both sklearn's brier_score_loss), ``ece`` (expected calibration error, 15 bins) and the
    ``reliability`` bins behind it."""
    from sklearn.metrics import brier_score_loss, log_loss  # slow import, keep lazy

    y_true, p = _checked_probabilities(y_true, probabilities)
    ids = list(range(p.shape[1]))
    return {"log_loss": float(log_loss(y_true, p, labels=ids)),
            "brier_score": float(brier_score_loss(y_true, p, labels=ids)),
            "ece": expected_calibration_error(y_true, p), "reliability": reliability_bins(y_true, p)}


def format_report(metrics: dict) -> str:
    """A short text table of :func:`classification_metrics` output (summary, per class, confusion matrix)."""
    per_class = metrics["per_class"]
    labels = list(metrics.get("labels") or per_class)
    w = max([len("label"), *(len(x) for x in labels)])
    lines = [
        f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  "
        f"macro_f1={metrics['macro_f1']:.4f}  weighted_f1={metrics['weighted_f1']:.4f}",
    ]
    if "ece" in metrics:
        lines.append(f"log_loss={metrics['log_loss']:.4f}  brier={metrics['brier_score']:.4f}  "
                     f"ece={metrics['ece']:.4f} ({ECE_BINS} bins)")
    lines += [
        "",
        f"{'label':<{w}}  precision  recall      f1  support",
    ]
    for name in labels:
        c = per_class[name]
        lines.append(f"{name:<{w}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
    cm = metrics.get("confusion_matrix")
    if cm:
        cw = max(len(str(v)) for row in cm for v in row)
        cw = max(cw, *(len(x) for x in labels))
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        lines.append(" " * w + "  " + " ".join(f"{x:>{cw}}" for x in labels))
        for name, row in zip(labels, cm):
            lines.append(f"{name:<{w}}  " + " ".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)
