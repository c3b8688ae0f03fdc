"""Multi-label metrics (scikit-learn), their text report, and per-label decision thresholds tuned for F1.

No TensorFlow here: the evaluate CLI and the baseline benchmark share it with the task.
"""
from __future__ import annotations

import numpy as np

__all__ = ["multilabel_metrics", "format_multilabel_report", "tune_thresholds", "apply_thresholds",
           "DEFAULT_THRESHOLD"]

DEFAULT_THRESHOLD = 0.5  # kept for a label that has no positive example to tune on


def apply_thresholds(probabilities, thresholds) -> np.ndarray:
    """0/1 int matrix: probability >= its label's threshold (what the export's graph does, in float32)."""
    p = np.asarray(probabilities, np.float32)
    return (p >= np.asarray(thresholds, np.float32)[None, :]).astype(np.int64)


def tune_thresholds(y_true, probabilities) -> np.ndarray:
    """Per label, the decision threshold (predict p >= t) with the best F1 on these examples (float32 [labels]).

    Every distinct probability is a candidate cut; the chosen t lies halfway between the lowest probability kept
    positive and the next lower one, so it selects the same examples here and does not sit on a seen value. Ties
    go to the cut with fewer positives. A label without a positive example keeps DEFAULT_THRESHOLD (its F1 is 0
    or undefined whatever the cut)."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(probabilities, np.float32)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(f"y_true {y.shape} and probabilities {p.shape} must be the same [examples, labels] shape.")
    out = np.full(p.shape[1], DEFAULT_THRESHOLD, np.float32)
    for j in range(p.shape[1]):
        positives = int(y[:, j].sum())
        if positives == 0:
            continue
        order = np.argsort(-p[:, j], kind="stable")
        values, hits = p[order, j], y[order, j]
        tp = np.cumsum(hits)
        # Cut after position i only where the next value differs (equal probabilities fall on the same side).
        last = np.flatnonzero(np.append(values[1:] != values[:-1], True))
        f1 = 2 * tp[last] / ((last + 1) + positives)
        best = last[int(np.argmax(f1))]  # argmax: the first maximum, i.e. the fewest positives
        lower = values[best + 1] if best + 1 < len(values) else np.float32(0.0)
        t = np.float32((np.float64(values[best]) + np.float64(lower)) / 2)
        out[j] = t if lower < t <= values[best] else values[best]
    return out


def multilabel_metrics(y_true, y_pred, labels) -> dict:
    """Metrics of 0/1 matrices [examples, labels]; ``labels[j]`` names column j.

    Returns ``{"n", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "subset_accuracy", "per_label",
    "labels", "rows_without_label", "rows_predicted_without_label"}``; ``per_label[name] = {"precision", "recall",
    "f1", "support"}`` (sklearn, zero_division=0). ``macro_f1`` averages over the labels that occur in ``y_true``
    or ``y_pred`` (as classification's macro-F1 does: a label absent from both has no defined F1). Subset accuracy:
    the share of examples whose predicted set is exactly the true set."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support  # slow import, keep lazy

    labels = [str(x) for x in labels]
    y_true, y_pred = (np.asarray(y, dtype=np.int64) for y in (y_true, y_pred))
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != len(labels):
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must both be [examples, {len(labels)}].")
    if len(y_true) == 0:
        raise ValueError("no examples: metrics need at least one row.")
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    present = np.flatnonzero((y_true.sum(0) + y_pred.sum(0)) > 0).tolist()
    macro = float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if present else 0.0
    return {
        "n": int(len(y_true)),
        "micro_precision": float(micro[0]), "micro_recall": float(micro[1]), "micro_f1": float(micro[2]),
        "macro_f1": macro,
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "per_label": {name: {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                             "support": int(support[j])} for j, name in enumerate(labels)},
        "labels": labels,
        "rows_without_label": int((y_true.sum(1) == 0).sum()),
        "rows_predicted_without_label": int((y_pred.sum(1) == 0).sum()),
    }


def format_multilabel_report(metrics: dict) -> str:
    """A text table of :func:`multilabel_metrics` output: the summary, then precision/recall/F1/support per label."""
    labels = list(metrics.get("labels") or metrics["per_label"])
    w = max([len("label"), *(len(x) for x in labels)])
    lines = [f"n={metrics['n']}  micro_f1={metrics['micro_f1']:.4f} (precision {metrics['micro_precision']:.4f}, "
             f"recall {metrics['micro_recall']:.4f})  macro_f1={metrics['macro_f1']:.4f}  "
             f"subset_accuracy={metrics['subset_accuracy']:.4f}",
             f"rows without a label: {metrics['rows_without_label']} true, "
             f"{metrics['rows_predicted_without_label']} predicted", "",
             f"{'label':<{w}}  precision  recall      f1  support"]
    for name in labels:
        c = metrics["per_label"][name]
        lines.append(f"{name:<{w}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
    return "\n".join(lines)
