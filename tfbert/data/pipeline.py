"""tf.data input pipelines: tokenize with the encoder's own preprocess model, group by length, pack per batch.

Tokenization runs once (then cached); each batch is packed to its own longest sequence (capped at
max_seq_length), so a batch of short tweets costs a fraction of a fixed 128-token pad.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops that preprocess SavedModels use)

from tfbert.data.long_texts import check_mode, default_stride, keep_segments, reach, truncation_stats, window
from tfbert.data.windows import WINDOW_POOLINGS, cut_windows, pool_windows, window_count

AUTOTUNE = tf.data.AUTOTUNE
# Batches per megabatch in length_grouped_batches (Hugging Face's LengthGroupedSampler uses 50).
MEGABATCH = 50
# Batch-order shuffle buffer, in megabatches: enough to mix short- and long-sequence batches across the epoch.
SHUFFLE_MEGABATCHES = 4
# A pipeline's pooling unless told otherwise: the one without fitted weights (a run's default is
# tfbert.data.windows.RUN_WINDOW_POOLING).
WINDOW_POOLING = "mean"
MAX_WINDOWS = 128  # --max-windows' default: 8,127 wordpieces at --max-seq-length 128 (~6,000 words of prose)


def length_grouped_batches(ds: tf.data.Dataset, n: int, batch_size: int, lengths, *, seed: int = 0) -> tf.data.Dataset:
    """Unbatched elements -> ragged batches of similar lengths, exactly ceil(n / batch_size) of them per epoch.

    As Hugging Face's LengthGroupedSampler: shuffle all n examples, cut them into megabatches of MEGABATCH *
    batch_size, sort each by length, cut into batches, shuffle the batch order. The megabatch being a multiple
    of batch_size, only the epoch's last batch can be partial, so the count is known (unlike bucketing, which
    leaves a partial batch per bucket). Reshuffled each epoch, deterministic for a seed. `lengths` maps a
    batched element (as ragged_batch makes it) to its per-example lengths.
    """
    n_batches = steps_per_epoch(n, batch_size)

    def sort_by_length(*batch):
        order = tf.argsort(lengths(*batch), stable=True)
        batch = tf.nest.map_structure(lambda t: tf.gather(t, order), batch)
        return batch if len(batch) > 1 else batch[0]  # a tuple element comes unpacked; keep its structure

    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).ragged_batch(MEGABATCH * batch_size)
    ds = ds.map(sort_by_length, num_parallel_calls=AUTOTUNE).unbatch().ragged_batch(batch_size)
    # Else each megabatch's batches would come in order, shortest to longest.
    ds = ds.shuffle(min(n_batches, SHUFFLE_MEGABATCHES * MEGABATCH), seed=seed + 1, reshuffle_each_iteration=True)
    # Known cardinality for Keras; a count different from the plan fails loudly instead of skewing the schedule.
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches))


def load_preprocess(handles_or_path):
    """The preprocess SavedModel of an EncoderHandles (or a path/URL), loaded with TF Hub."""
    import tensorflow_hub as hub
    return hub.load(getattr(handles_or_path, "preprocess", handles_or_path))


class TextPipeline:
    """Turns DataFrames (text[, text_b], label_id) into batched encoder inputs for one preprocess model."""

    def __init__(self, preprocess, max_seq_length: int = 128, has_pairs: bool = False, pad_multiple: int = 1,
                 long_texts: str = "truncate", window_stride: int | None = None, max_windows: int = MAX_WINDOWS,
                 window_pooling: str = WINDOW_POOLING, pooling_weights=None):
        self.preprocess = preprocess  # a loaded TF Hub preprocess SavedModel (tokenize, bert_pack_inputs)
        self.max_seq_length = max_seq_length
        # pad_multiple > 1 bounds the number of distinct batch shapes (each one costs an XLA compile).
        self.pad_multiple = pad_multiple
        self.n_segments = 2 if has_pairs else 1
        check_mode(long_texts)
        self.long_texts = long_texts  # which wordpieces of a text longer than the window are kept (long_texts.py)
        self.window = window(max_seq_length, self.n_segments)
        if long_texts == "windows":
            if has_pairs:
                raise ValueError("long_texts windows reads single texts, not sentence pairs")
            self.stride = window_stride or default_stride(self.window)
            if not 1 <= self.stride <= self.window or max_windows < 1:
                raise ValueError(f"windows of {self.window} wordpieces need 1 <= stride <= {self.window} and at "
                                 f"least one window, not stride {self.stride}, max_windows {max_windows}")
            self.max_windows = max_windows
            if window_pooling not in WINDOW_POOLINGS:
                raise ValueError(f"window pooling must be one of {', '.join(WINDOW_POOLINGS)}, not {window_pooling!r}")
            # attention's scoring vector, fitted after training (None before: the mean)
            self.window_pooling, self.pooling_weights = window_pooling, pooling_weights

    @property
    def reach(self) -> int | None:
        """Windows: the wordpieces of a text that are read (past them it is cut); None otherwise."""
        return reach(self.window, self.stride, self.max_windows) if self.long_texts == "windows" else None

    def window_settings(self) -> dict | None:
        """What an export records of its windows (metadata "windows"); None unless --long-texts windows."""
        if self.long_texts != "windows":
            return None
        weights = {} if self.pooling_weights is None else {"pooling_weights": list(self.pooling_weights)}
        return {"size": self.window, "stride": self.stride, "max_windows": self.max_windows, "reach": self.reach,
                "pooling": self.window_pooling, **weights}

    def wordpieces(self, texts):
        """Raw strings -> all their ragged wordpiece ids [batch, (pieces)], uncut."""
        return self.preprocess.tokenize(texts).merge_dims(-2, -1)  # [batch, words, wordpieces] -> [batch, pieces]

    def segments(self, *texts) -> list:
        """Raw strings (one tensor per segment) -> the ragged wordpiece ids of each segment that are packed,
        cut as --long-texts says (in training and in the exported graph alike)."""
        if len(texts) != self.n_segments:
            raise ValueError(f"this pipeline packs {self.n_segments} segment(s), not {len(texts)}")
        if self.long_texts == "windows":  # whole texts up to the reach; `windows` cuts them
            return [self.wordpieces(texts[0])[:, :self.reach]]
        return keep_segments([self.wordpieces(t) for t in texts], self.max_seq_length, self.long_texts)

    def tokenize(self, texts):
        """Raw strings, as single texts -> ragged wordpiece ids [batch, (pieces)], cut to fit (pairs: `segments`)."""
        return self.segments(texts)[0]

    def windows(self, ids):
        """Ragged ids of single texts [batch, (pieces)] (from `segments`) -> (windows [n_windows, (<= window)],
        item int64 [n_windows]: the text each comes from). Without --long-texts windows, each text is its window."""
        if self.long_texts != "windows":
            return ids, tf.range(ids.nrows())
        windows, item, _ = cut_windows(ids, self.window, self.stride, self.max_windows)
        return windows, item

    def examples(self, segments: tuple, targets):
        """One batch of (segments, targets) -> training examples: under --long-texts windows every window of a
        text, with the text's target (any tensor with the batch first); else unchanged."""
        if self.long_texts != "windows":
            return segments, targets
        windows, item = self.windows(segments[0])
        return (windows,), tf.nest.map_structure(lambda t: tf.gather(t, item), targets)

    def per_text(self, fn, segments):
        """fn(segments) -> per-row outputs [rows, ...], run over each text's windows and pooled back per text
        (--window-pooling) under --long-texts windows, in text order: what the exported graphs serve."""
        if self.long_texts != "windows":
            return fn(segments)
        windows, item = self.windows(segments[0])
        return self.pool_items(fn([windows]), item, segments[0].nrows())

    def pool_items(self, values, item, n_items):
        """Per-window values [n_windows, k] -> per text [n_items, k], by --window-pooling (windows only)."""
        return pool_windows(values, item, n_items, self.window_pooling, self.pooling_weights)

    def pack(self, segments):
        """Ragged token ids of 1 or 2 segments -> encoder inputs padded to the batch's longest (rounded up)."""
        longest = tf.reduce_max(tf.add_n([tf.cast(s.row_lengths(), tf.int32) for s in segments]))
        needed = tf.maximum(longest, 0) + self.n_segments + 1  # max of an empty batch is the int minimum
        seq_length = tf.minimum(-(-needed // self.pad_multiple) * self.pad_multiple, self.max_seq_length)
        return self.preprocess.bert_pack_inputs(list(segments), seq_length=seq_length)

    def encode(self, *texts):
        """Raw strings (one tensor per segment) -> encoder inputs, as one batch padded to its longest."""
        return self.pack(self.segments(*texts))

    def words(self, *texts) -> list:
        """Raw strings (one tensor per segment) -> each segment's ragged ids [batch, (words), (wordpieces)], uncut:
        what word-level augmentation works on (`augmented` cuts them after it)."""
        return [self.preprocess.tokenize(t) for t in texts]

    def augmented(self, words, augment, seed) -> tuple:
        """Segments of ragged [batch, (words), (pieces)] -> augmented wordpiece ids [batch, (pieces)], cut as
        --long-texts says: word operations before the cut, wordpiece operations on what is packed."""
        fold = tf.random.experimental.stateless_fold_in
        pieces = [augment.words(w, fold(seed, i)).merge_dims(-2, -1) for i, w in enumerate(words)]
        pieces = keep_segments(pieces, self.max_seq_length, self.long_texts)
        return tuple(augment.pieces(p, fold(seed, self.n_segments + i)) for i, p in enumerate(pieces))

    def tokenized(self, df: pd.DataFrame, words: bool = False, targets: np.ndarray | None = None) -> tf.data.Dataset:
        """Unbatched (segments tuple, target) with ragged token ids, tokenized in chunks (words: uncut, with the
        word level, for augmentation); the target is the row's label_id, or its row of `targets`."""
        cols = ["text", "text_b"][: self.n_segments]
        texts = tuple(df[c].astype(str).to_numpy(dtype=object) for c in cols)
        labels = df["label_id"].to_numpy(np.int32) if "label_id" in df else np.zeros(len(df), np.int32)
        labels = labels if targets is None else targets
        ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(512)
        if words:  # augmentation cuts (and refuses windows) after it has changed the words
            ds = ds.map(lambda t, y: (tuple(self.words(*t)), y), num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(lambda t, y: self.examples(tuple(self.segments(*t)), y), num_parallel_calls=AUTOTUNE)
        return ds.unbatch()

    def lengths(self, texts) -> list:
        """Full wordpiece counts per segment (int64 arrays) of `texts` (a DataFrame with text[, text_b], or a
        sequence of strings): one batched pass over the tokenizer, counting only."""
        if isinstance(texts, pd.DataFrame):
            columns = tuple(texts[c].astype(str).to_numpy(dtype=object) for c in ["text", "text_b"][: self.n_segments])
        else:
            columns = (np.asarray(list(texts), dtype=object),)
        ds = tf.data.Dataset.from_tensor_slices(tuple(tf.constant(c, tf.string) for c in columns)).batch(512)
        ds = ds.map(lambda *t: tuple(self.wordpieces(x).row_lengths() for x in t), num_parallel_calls=AUTOTUNE)
        batches = list(ds.as_numpy_iterator())
        return [np.concatenate([np.zeros(0, np.int64)] + [b[i] for b in batches]) for i in range(len(columns))]

    def window_items(self, texts) -> np.ndarray:
        """The text (row index) of every example `dataset` makes of `texts`, in order: under --long-texts windows
        one per window (exactly as `windows` cuts them), else one per text."""
        if self.long_texts != "windows":
            return np.arange(len(texts))
        counts = window_count(self.lengths(texts)[0], self.window, self.stride, self.max_windows).numpy()
        return np.repeat(np.arange(len(counts)), counts)

    def pooler(self, texts):
        """values -> np.ndarray: the outputs of the examples of `texts` (model.predict over `dataset(texts)`) ->
        one per text, pooled as the export pools (--window-pooling, its weights as they are at the call); unchanged
        unless --long-texts windows. The windows are counted once, here, for a callback that pools every epoch."""
        if self.long_texts != "windows":
            return np.asarray
        items, n_texts = self.window_items(texts), len(texts)
        return lambda values: self.pool_items(tf.constant(values), items, n_texts).numpy()

    def pool(self, values, texts) -> np.ndarray:
        """`pooler(texts)(values)`: one pass."""
        return self.pooler(texts)(values)

    def truncation(self, texts) -> dict:
        """How much of `texts` (as in `lengths`) is never read: tfbert.data.long_texts.truncation_stats over the
        window, or under --long-texts windows over the reach of --max-windows windows."""
        return truncation_stats(self.lengths(texts), self.reach or self.window)

    def truncation_report(self, splits: dict) -> dict:
        """{"long_texts", "window"[, "windows"], "splits": {name: truncation(texts)}} for named splits."""
        windows = self.window_settings()
        return {"long_texts": self.long_texts, "window": self.window, **({"windows": windows} if windows else {}),
                "splits": {name: self.truncation(texts) for name, texts in splits.items()}}

    def dataset(self, df: pd.DataFrame, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                augment=None, targets: np.ndarray | None = None) -> tf.data.Dataset:
        """Training (shuffle=True: reshuffled each epoch and grouped by length; `augment`: a
        tfbert.data.augment.Augmentation, a new copy each epoch) or evaluation batches (in order); targets: the
        rows' label_id, or their rows of `targets`."""
        return self.batches(self.tokenized(df, words=augment is not None, targets=targets), self.count(df), batch_size,
                            shuffle=shuffle, seed=seed, augment=augment)

    def batches(self, ds: tf.data.Dataset, n: int, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                augment=None) -> tf.data.Dataset:
        """Unbatched (segments tuple, target) of `tokenized` (n of them) -> cached, batched, packed (inputs, target).
        Augmentation runs after the cache, so that every epoch draws a new copy; training batches only."""
        if augment is not None and not shuffle:
            raise ValueError("augmentation is for training batches only (shuffle=True)")
        ds = ds.cache()
        if shuffle:
            def lengths(segments, _):  # wordpieces per example (augmenting: [batch, words, pieces] segments)
                return tf.add_n([(s if augment is None else s.merge_dims(1, 2)).row_lengths() for s in segments])

            ds = length_grouped_batches(ds, n, batch_size, lengths, seed=seed)
        else:
            ds = ds.ragged_batch(batch_size)
        if augment is not None:
            ds = augment.batches(ds, lambda s, y, key: (self.augmented(s, augment, key), y))
        return ds.map(lambda s, y: (self.pack(s), y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


    def count(self, texts) -> int:
        """Examples `dataset` makes of `texts`: its rows, or under --long-texts windows their windows."""
        return len(self.window_items(texts))


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    # Exact for length_grouped_batches (only the epoch's last batch can be partial): the LR schedule relies on it.
    return -(-n_rows // batch_size)
