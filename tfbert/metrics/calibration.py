"""What a classifier learns from its validation split after training: a softmax temperature (temperature
scaling, Guo et al. 2017) and, for two labels, a decision threshold. numpy and scipy only (no TensorFlow).

The export applies both in its graph (tfbert.export.classifier): probabilities = softmax(logits / T), and with a
threshold the label is the second one exactly when its probability reaches the threshold.
"""
from __future__ import annotations

import numpy as np

from tfbert.metrics.classification import expected_calibration_error

__all__ = ["softmax", "nll", "fit_temperature", "tune_threshold", "decide", "fit_on_validation", "TEMPERATURE_RANGE"]

# T is searched in [1/100, 100], far beyond what a fine-tuned model needs; a fit at a bound means the validation
# log-loss only kept falling that way.
TEMPERATURE_RANGE = (0.01, 100.0)


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits, y_true, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / temperature)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_norm = (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(y_true)]))


def fit_temperature(logits, y_true) -> float:
    """The T > 0 that minimises the validation NLL of softmax(logits / T): a 1-D bounded search on log T
    (NLL is convex in 1/T, so the minimum is the one minimum). Refuses logits whose argmax is right for every
    example: their NLL falls all the way to T -> 0, which would serve probabilities of 0 and 1."""
    from scipy.optimize import minimize_scalar  # slow import, keep lazy

    logits = np.asarray(logits, dtype=np.float64)
    y_true = np.asarray(y_true).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"fit_temperature needs logits [n, classes] for n = {len(y_true)} labels, got shape "
                         f"{logits.shape}.")
    if not np.isfinite(logits).all():
        raise ValueError("fit_temperature: the logits hold NaN or infinite values.")
    if (logits.argmax(axis=1) == y_true).all():
        raise ValueError(f"fit_temperature: all {len(y_true)} examples are classified correctly, so the log-loss "
                         "has no minimum at any T > 0 (it falls as T -> 0)")
    result = minimize_scalar(lambda log_t: nll(logits, y_true, np.exp(log_t)), bounds=np.log(TEMPERATURE_RANGE),
                             method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def tune_threshold(p_positive, is_positive) -> tuple[float, float]:
    """The decision threshold on the positive label's probability with the best F1 (label positive when
    p >= threshold), and that F1. Ties go to the threshold nearest 0.5. The threshold lies halfway between two
    neighbouring validation probabilities, so that small numeric differences of the served graph do not move a
    validation example across it."""
    p = np.asarray(p_positive, dtype=np.float64).reshape(-1)
    y = np.asarray(is_positive, dtype=bool).reshape(-1)
    if len(p) != len(y) or len(p) == 0:
        raise ValueError(f"tune_threshold needs one probability per label, got {len(p)} and {len(y)}.")
    if not y.any():
        raise ValueError("tune_threshold: the validation split has no example of the positive label, so F1 is "
                         "undefined.")
    scores = np.unique(p)[::-1]  # candidate cut-offs, highest first
    order = np.argsort(-p, kind="stable")
    tp_sorted = np.cumsum(y[order])
    last = np.searchsorted(-p[order], -scores, side="right") - 1  # last sorted index with p >= each score
    tp = tp_sorted[last]
    predicted = last + 1
    f1 = 2 * tp / (predicted + y.sum())
    lower = np.append(scores[1:], 0.0)  # the next lower probability (0 below the lowest)
    thresholds = (scores + lower) / 2
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    pick = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[pick]), float(f1[pick])


def decide(probabilities, threshold: float | None = None) -> np.ndarray:
    """Label ids as the export decides them: the argmax, or with a threshold (two labels) the second label
    exactly when its probability reaches the threshold."""
    p = np.asarray(probabilities)
    if threshold is None:
        return p.argmax(axis=1)
    return (p[:, 1] >= threshold).astype(np.int64)


def fit_on_validation(logits, y_true, labels, *, calibrate: bool, tune: str | None) -> dict:
    """Fits what was asked on validation logits; returns the facts for metrics.json and the export metadata:
    {"calibration": {"temperature", "valid": {"before", "after"}: {"ece", "log_loss"}}} with `calibrate` (T = 1
    and a "skipped" reason when the validation split is classified without error),
    {"decision_threshold": {"value", "positive_label", "optimised", "valid_f1", "valid_f1_argmax"}} with
    tune == "f1"."""
    from sklearn.metrics import f1_score  # slow import, keep lazy

    y_true = np.asarray(y_true).reshape(-1)
    out = {}
    temperature = 1.0
    if calibrate:
        skipped = None
        if (np.asarray(logits).argmax(axis=1) == y_true).all():
            skipped = (f"all {len(y_true)} validation rows are classified correctly: the log-loss falls as T -> 0, "
                       "so there is no temperature to fit; T = 1 kept")
        else:
            temperature = fit_temperature(logits, y_true)
        quality = lambda t: {"ece": expected_calibration_error(y_true, softmax(logits, t)),  # noqa: E731
                             "log_loss": nll(logits, y_true, t)}
        out["calibration"] = {"temperature": temperature, "valid": {"before": quality(1.0),
                                                                    "after": quality(temperature)}}
        if skipped:
            out["calibration"]["skipped"] = skipped
    if tune is not None:
        if tune != "f1":
            raise ValueError(f"tune_threshold must be 'f1', not {tune!r}")
        if len(labels) != 2:
            raise ValueError(f"a decision threshold needs two labels, not {len(labels)} ({', '.join(labels)})")
        p = softmax(logits, temperature)
        value, f1 = tune_threshold(p[:, 1], y_true == 1)
        out["decision_threshold"] = {"value": value, "positive_label": labels[1], "optimised": "f1",
                                     "valid_f1": f1, "valid_f1_argmax": float(f1_score(y_true, p.argmax(1)))}
    return out
