"""Regression metrics (scipy, numpy) and their text report. No TensorFlow here: the evaluate CLI shares it."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["regression_metrics", "format_regression_report", "correlation"]


def correlation(y_true, y_pred, kind: str = "spearman") -> float:
    """Pearson or Spearman correlation; NaN when it is undefined (fewer than 2 pairs or a constant side)."""
    from scipy import stats  # scikit-learn's dependency; slow import, keep lazy

    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr}[kind]
    return float(fn(y_true, y_pred)[0])


def regression_metrics(y_true, y_pred) -> dict:
    """``{"n", "pearson", "spearman", "mae", "rmse", "label_mean", "label_std"}`` in the label's own units.
    A correlation that is undefined (constant predictions) is NaN (null in JSON)."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}.")
    if len(y_true) == 0:
        raise ValueError("no examples: metrics need at least one (y_true, y_pred) pair.")
    err = y_pred - y_true
    return {"n": int(len(y_true)), "pearson": correlation(y_true, y_pred, "pearson"),
            "spearman": correlation(y_true, y_pred, "spearman"), "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err ** 2))), "label_mean": float(np.mean(y_true)),
            "label_std": float(np.std(y_true))}


def format_regression_report(metrics: dict) -> str:
    show = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"  # noqa: E731
    return "\n".join([f"{'examples':>10}: {metrics['n']}",
                      *(f"{name:>10}: {show(metrics[name])}" for name in ("pearson", "spearman", "mae", "rmse")),
                      f"{'labels':>10}: mean {show(metrics['label_mean'])}, std {show(metrics['label_std'])}"])
