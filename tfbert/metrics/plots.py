"""PNG plots of a run: training curves, the confusion matrix, the reliability diagram, predicted against true scores
(matplotlib, no pyplot state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfbert.files import atomic_write

__all__ = ["plot_confusion_matrix", "plot_history", "plot_reliability", "plot_scatter", "plot_trials"]


def _new_figure(width: float, height: float):
    # A bare Figure on an Agg canvas: no pyplot, so the caller's backend (e.g. a notebook's)
    # is left alone, figures are never registered globally and nothing leaks between calls.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path) -> Path:
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"), binary=True)
    return path


def plot_confusion_matrix(cm, labels, path) -> Path:
    """Write the confusion matrix as a PNG: counts in the cells, colour = share of the true class (row)."""
    cm = np.asarray(cm, dtype=np.int64)
    labels = [str(x) for x in labels]
    if cm.ndim != 2 or cm.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(labels)} labels.")
    # Row-normalised colours keep small classes readable next to a dominant one.
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)

    k = len(labels)
    size = min(max(4.0, 0.6 * k + 2.5), 20.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (n={int(cm.sum())})")
    if k <= 30:  # beyond that the numbers are unreadable anyway
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.5 else "black")
    return _save_png(fig, path)


def plot_history(history: dict, path) -> Path:
    """Write training curves as a PNG: one panel for keys containing "loss", one for the other metrics.

    ``history`` maps a metric name to one value per epoch (Keras ``History.history``).
    ``x`` and ``val_x`` share a colour; validation curves are dashed. Empty series are skipped.
    """
    series = {str(k): [float("nan") if v is None else float(v) for v in vals]
              for k, vals in (history or {}).items() if vals is not None and len(vals)}
    if not series:
        raise ValueError("history has no values to plot.")
    groups = [("loss", [k for k in series if "loss" in k]), ("metrics", [k for k in series if "loss" not in k])]
    groups = [(title, keys) for title, keys in groups if keys]

    fig = _new_figure(6.0 * len(groups), 4.0)
    for n, (title, keys) in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), n + 1)
        colours = {}
        for key in keys:
            base = key[4:] if key.startswith("val_") else key
            colour = colours.setdefault(base, f"C{len(colours) % 10}")
            ys = series[key]
            ax.plot(range(1, len(ys) + 1), ys, color=colour, linestyle="--" if key.startswith("val_") else "-",
                    marker="o" if len(ys) <= 30 else None, markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        longest = max(len(series[k]) for k in keys)
        if longest <= 20:
            ax.set_xticks(range(1, longest + 1))
    return _save_png(fig, path)


def plot_scatter(y_true, y_pred, path, title: str = "Test set") -> Path:
    """Write predicted against true values as a PNG, with the identity line; dense data sets are drawn as a
    hexbin (log counts) so that thousands of points stay readable."""
    y_true, y_pred = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape or not len(y_true):
        raise ValueError(f"need as many predictions as true values, got {len(y_pred)} and {len(y_true)}.")
    fig = _new_figure(5.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    if len(y_true) > 500:
        im = ax.hexbin(y_true, y_pred, gridsize=40, bins="log", cmap="Blues", mincnt=1)
        fig.colorbar(im, ax=ax, label="texts (log scale)")
    else:
        ax.scatter(y_true, y_pred, s=12, alpha=0.6)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="C3", linestyle="--", linewidth=1, label="predicted = true")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title} (n={len(y_true)})")
    ax.legend(loc="upper left")
    return _save_png(fig, path)


def plot_reliability(reliability: dict, path, ece: float | None = None) -> Path:
    """Write a reliability diagram as a PNG from tfbert.metrics.classification.reliability_bins output: per
    confidence bin the accuracy (bars) and its gap to the bin's mean confidence, against the diagonal of perfect
    calibration, and below it how many examples each bin holds. Bars under the diagonal: over-confident."""
    edges = np.asarray(reliability["edges"], dtype=float)
    count = np.asarray(reliability["count"], dtype=float)
    if len(edges) != len(count) + 1:
        raise ValueError(f"reliability has {len(edges)} edges for {len(count)} bins; expected one more edge.")
    nan = lambda xs: np.array([np.nan if x is None else x for x in xs], dtype=float)  # noqa: E731
    accuracy, confidence = nan(reliability["accuracy"]), nan(reliability["confidence"])
    left, width = edges[:-1], np.diff(edges)

    fig = _new_figure(5.0, 6.0)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    ax.bar(left, np.nan_to_num(accuracy), width=width, align="edge", color="C0", edgecolor="white",
           label="accuracy")
    # The gap up (over-confident) or down (under-confident) to the bin's mean confidence: what ECE sums.
    ax.bar(left, np.nan_to_num(confidence - accuracy), bottom=np.nan_to_num(accuracy), width=width, align="edge",
           color="C3", alpha=0.35, edgecolor="C3", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.tick_params(labelbottom=False)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    title = f"Reliability (n={int(count.sum())}"
    ax.set_title(title + (f", ECE {ece:.3f})" if ece is not None else ")"))
    counts = fig.add_subplot(grid[1], sharex=ax)
    counts.bar(left, count, width=width, align="edge", color="grey", edgecolor="white")
    counts.set_xlabel("confidence (largest probability)")
    counts.set_ylabel("examples")
    return _save_png(fig, path)


def plot_trials(done: list[dict], monitor: str, path) -> Path:
    """A search's finished trials (tfbert.tune; rows with `trial`, `monitor`, the settings): the score of each with
    the best so far, and the score against the learning rate when it was searched."""
    fig = _new_figure(10, 4)
    fig.set_layout_engine("constrained")  # keeps the right panel's axis label off the left panel
    by_trial, by_lr = fig.subplots(1, 2)
    scores = [r[monitor] for r in done]
    score_name = f"validation {monitor.removeprefix('val_')}"
    by_trial.plot(range(len(done)), scores, "o", label="trial")
    by_trial.plot(range(len(done)), [max(scores[: i + 1]) for i in range(len(done))], "-", label="best so far")
    by_trial.set_xticks(range(len(done)), [r["trial"] for r in done], rotation=90 if len(done) > 15 else 0)
    by_trial.set(xlabel="trial (first: tfbert's settings)", ylabel=score_name, title="Trials")
    by_trial.legend()
    if all(isinstance(r.get("learning_rate"), float) for r in done):
        by_lr.scatter([r["learning_rate"] for r in done], scores)
        by_lr.set_xscale("log")
        by_lr.set(xlabel="learning rate", ylabel=score_name, title="Score against learning rate")
    else:
        by_lr.axis("off")
    return _save_png(fig, path)
