"""Classification metrics (sklearn) and their text report. No TensorFlow here: the evaluate CLI shares it."""
from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "format_report"]


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


def format_report(metrics: dict) -> str:
    """A short text table of :func:`classification_metrics` output (summary, per class, confusion matrix)."""
    per_class = metrics["per_class"]
    labels = list(metrics.get("labels") or per_class)
    w = max([len("label"), *(len(x) for x in labels)])
    lines = [
        f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  "
        f"macro_f1={metrics['macro_f1']:.4f}  weighted_f1={metrics['weighted_f1']:.4f}",
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
