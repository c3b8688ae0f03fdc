"""Classification metrics, their text report, PNG plots and atomic JSON writes.

No TensorFlow here: this module is shared by training (run folder outputs) and the
evaluate CLI, and must stay cheap to import.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["classification_metrics", "format_report", "plot_confusion_matrix", "plot_history", "write_json"]


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


# --------------------------------------------------------------------------- plots


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
    _atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"), binary=True)
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


# --------------------------------------------------------------------------- files


def _atomic_write(path, write, *, binary: bool = False, encoding: str = "utf-8") -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``.

    Readers see the old file or the complete new one, never a partial write; on an error the
    temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the result gets normal file permissions
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding, "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return _finite(float(o))
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _finite(x: float):
    return x if math.isfinite(x) else None


def _clean(o):
    # json.dumps writes NaN/Infinity, which strict JSON readers reject; store them as null.
    if isinstance(o, float):
        return _finite(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically (temp file + os.replace).

    numpy scalars/arrays and Paths are converted; NaN and infinities become null.
    """
    text = json.dumps(_clean(obj), indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    _atomic_write(path, lambda f: f.write(text + "\n"))
    return Path(path)
