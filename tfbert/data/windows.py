"""Overlapping windows over wordpiece sequences longer than the encoder's window, as TF ops.

One implementation for every reader of long texts: the training pipeline (every window is an example), the
exported serving graph (windows become rows of the chunked batches, pooled back per request item) and extractive
QA (a question is paired with each window of its context). Everything is ragged TF so it runs inside a SavedModel
that TF Serving loads with nothing else.

A text of n wordpieces read through windows of `size` advancing by `step` gets 1 + ceil((n - size) / step) windows;
the last one is moved back to end flush with the text, so no window is short unless the whole text is. A text that
fits (or is empty) is one window. `max_windows` caps the windows per text (the first ones are kept) so one request
cannot take unbounded memory.
"""
from __future__ import annotations

import tensorflow as tf


def window_count(lengths, size: int, step: int, max_windows: int | None = None):
    """Windows per text (int64 [batch]) for texts of `lengths` wordpieces."""
    lengths = tf.cast(lengths, tf.int64)
    if size < 1 or step < 1 or step > size:
        raise ValueError(f"windows need 1 <= step <= size, not size {size}, step {step}")
    over = tf.maximum(lengths - size, 0)
    n = 1 + (over + step - 1) // step
    return tf.minimum(n, max_windows) if max_windows else n


def cut_windows(ids: tf.RaggedTensor, size: int, step: int, max_windows: int | None = None):
    """Ragged ids [batch, (n)] -> (windows [n_windows, (<= size)], item [n_windows], start [n_windows]).

    `item` is the row of `ids` each window comes from (windows are in row order, then text order); `start` is the
    window's first wordpiece in its text, so window position j is text position start + j.
    """
    lengths = ids.row_lengths()
    counts = window_count(lengths, size, step, max_windows)
    numbered = tf.ragged.range(counts)  # [batch, (windows)]: 0, 1, ... per text
    item = numbered.value_rowids()
    text_length = tf.gather(lengths, item)
    start = tf.minimum(numbered.flat_values * step, tf.maximum(text_length - size, 0))
    length = tf.minimum(text_length - start, size)
    begin = tf.gather(ids.row_starts(), item) + start
    flat = tf.ragged.range(begin, begin + length)
    windows = tf.RaggedTensor.from_row_splits(tf.gather(ids.flat_values, flat.flat_values), flat.row_splits,
                                              validate=False)
    return windows, item, start


# --window-pooling: how a text's windows' outputs (logits, scores) become the text's. mean: each window's evidence
# added (its argmax is the argmax of their sum); max: per output, the most confident window decides; attention: a
# weighted mean, weights softmax over the text's windows of (weights . outputs), fitted after training on the
# validation texts (fit_attention); zero weights are the mean.
WINDOW_POOLINGS = ("mean", "max", "attention")
# A run's --window-pooling unless given: it wins on both long-text benchmarks (docs/pages/guides/long-texts.md).
RUN_WINDOW_POOLING = "attention"


def pool_windows(values, item, n_items, how: str = "mean", weights=None):
    """Per-window values [n_windows, k] -> per-text values [n_items, k], pooled over each text's windows as `how`
    says (WINDOW_POOLINGS); `weights` [k]: attention's scoring vector (None: zeros, the mean)."""
    if how == "mean" or (how == "attention" and weights is None):
        return tf.math.unsorted_segment_mean(values, item, n_items)
    if how == "max":
        return tf.math.unsorted_segment_max(values, item, n_items)
    if how == "attention":
        return attention_pool(values, item, n_items, tf.constant(weights, values.dtype))
    raise ValueError(f"window pooling must be one of {', '.join(WINDOW_POOLINGS)}, not {how!r}")


def attention_pool(values, item, n_items, weights):
    """sum_w a_w values_w per text, a = softmax over the text's windows of values_w . weights (values [n_windows]
    are one output each)."""
    if values.shape.rank == 1:
        return attention_pool(values[:, None], item, n_items, weights)[:, 0]
    score = tf.linalg.matvec(values, weights)
    score = tf.exp(score - tf.gather(tf.math.unsorted_segment_max(score, item, n_items), item))
    share = score / tf.gather(tf.math.unsorted_segment_sum(score, item, n_items), item)
    return tf.math.unsorted_segment_sum(values * share[:, None], item, n_items)


# Attention fits on validation texts with at least this many of several windows; with fewer it stays the mean.
MIN_FIT_TEXTS = 8
# L2 penalty on the scoring vector, per text: keeps the fit near the mean when a few texts would push it far.
FIT_L2 = 1e-3


def fit_attention(values, item, n_items: int, loss) -> tuple[list[float], dict]:
    """The attention scoring vector [k] that minimises loss(pooled values [n_items, k]) (a mean over the texts, as
    a tf scalar) + FIT_L2 * |weights|^2, by L-BFGS from zeros (the mean). Returns (weights, facts: loss at the
    mean and fitted, texts with several windows); zeros when fewer than MIN_FIT_TEXTS texts have several windows."""
    import numpy as np
    from scipy.optimize import minimize

    values = tf.constant(values, tf.float32)
    item = tf.constant(item, tf.int64)
    k = int(values.shape[-1])
    several = int(np.sum(np.bincount(item.numpy(), minlength=n_items) > 1))

    def objective(w):
        w = tf.constant(w, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(w)
            total = loss(attention_pool(values, item, n_items, w)) + FIT_L2 * tf.reduce_sum(w * w)
        return float(total), tape.gradient(total, w).numpy().astype(np.float64)

    at_mean = float(loss(tf.math.unsorted_segment_mean(values, item, n_items)))
    facts = {"texts_with_several_windows": several, "loss_at_mean": at_mean}
    if several < MIN_FIT_TEXTS:
        return [0.0] * k, {**facts, "fitted": False, "loss": at_mean}
    result = minimize(objective, np.zeros(k), jac=True, method="L-BFGS-B")
    weights = [float(v) for v in result.x]
    return weights, {**facts, "fitted": True,
                     "loss": float(loss(attention_pool(values, item, n_items, tf.constant(weights, tf.float32))))}


# What the windows settings of a tagger record as their "pooling": a word's tag is read from one window (best_context).
BEST_CONTEXT = "best-context"


def best_context(ids: tf.RaggedTensor, item, start, lengths):
    """Where each wordpiece of `ids` [batch, (n)] (the ragged `cut_windows` was given) is read with most context.

    Returns int64 ragged like `ids`: for each wordpiece, the flat index into the windows' flat values (window
    after window, as `cut_windows` orders them; `lengths` are the windows' row lengths) of the window position
    that has most wordpieces on its shorter side, min(p - s, s + L - 1 - p) for text position p in a window
    starting at s of length L (BERT's max-context rule for SQuAD); ties go to the earlier window. -1 for a
    wordpiece no window reads (past the --max-windows reach). Per-word outputs (NER tags) are read from there.
    """
    offsets = tf.ragged.range(tf.cast(lengths, tf.int64))  # [n_windows, (L)]: position j in its window
    window_of = offsets.value_rowids()
    j = offsets.flat_values
    score = tf.minimum(j, tf.gather(tf.cast(lengths, tf.int64), window_of) - 1 - j)
    piece = (tf.gather(ids.row_starts(), tf.gather(item, window_of)) + tf.gather(tf.cast(start, tf.int64), window_of)
             + j)  # flat index of the wordpiece in ids
    n_pieces = tf.shape(ids.flat_values, out_type=tf.int64)[0]
    best = tf.math.unsorted_segment_max(score, piece, n_pieces)
    position = tf.range(tf.size(j, out_type=tf.int64))
    never = tf.int64.max
    chosen = tf.math.unsorted_segment_min(tf.where(score == tf.gather(best, piece), position, never), piece, n_pieces)
    return ids.with_flat_values(tf.where(chosen == never, tf.constant(-1, tf.int64), chosen))
