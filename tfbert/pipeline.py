"""tf.data input pipelines: tokenize with the encoder's own preprocess model, bucket by length, pack per batch.

Tokenization runs once (then cached); each batch is packed to its own longest sequence (capped at
max_seq_length), so a batch of short tweets costs a fraction of a fixed 128-token pad.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops that preprocess SavedModels use)

AUTOTUNE = tf.data.AUTOTUNE
# Upper bounds (in wordpieces) of the length buckets used to group similar lengths into one batch.
BUCKET_BOUNDARIES = (16, 24, 32, 40, 48, 64, 96)


def load_preprocess(handles_or_path):
    """The preprocess SavedModel of an EncoderHandles (or a path/URL), loaded with TF Hub."""
    import tensorflow_hub as hub
    return hub.load(getattr(handles_or_path, "preprocess", handles_or_path))


class TextPipeline:
    """Turns DataFrames (text[, text_b], label_id) into batched encoder inputs for one preprocess model."""

    def __init__(self, preprocess, max_seq_length: int = 128, has_pairs: bool = False, pad_multiple: int = 1):
        self.preprocess = preprocess  # a loaded TF Hub preprocess SavedModel (tokenize, bert_pack_inputs)
        self.max_seq_length = max_seq_length
        # pad_multiple > 1 bounds the number of distinct batch shapes (each one costs an XLA compile).
        self.pad_multiple = pad_multiple
        self.n_segments = 2 if has_pairs else 1

    def tokenize(self, texts):
        """Raw strings -> ragged wordpiece ids [batch, (pieces)], cut to max_seq_length."""
        # [batch, words, wordpieces] -> [batch, wordpieces]; long texts cut early so the cache stays small.
        return self.preprocess.tokenize(texts).merge_dims(-2, -1)[:, : self.max_seq_length]

    def pack(self, segments):
        """Ragged token ids of 1 or 2 segments -> encoder inputs padded to the batch's longest (rounded up)."""
        longest = tf.reduce_max(tf.add_n([tf.cast(s.row_lengths(), tf.int32) for s in segments]))
        needed = tf.maximum(longest, 0) + self.n_segments + 1  # max of an empty batch is the int minimum
        seq_length = tf.minimum(-(-needed // self.pad_multiple) * self.pad_multiple, self.max_seq_length)
        return self.preprocess.bert_pack_inputs(list(segments), seq_length=seq_length)

    def encode(self, *texts):
        """Raw strings (one tensor per segment) -> encoder inputs, as one batch padded to its longest."""
        return self.pack([self.tokenize(t) for t in texts])

    def tokenized(self, df: pd.DataFrame) -> tf.data.Dataset:
        """Unbatched (segments tuple, label_id) with ragged token ids, tokenized in chunks."""
        cols = ["text", "text_b"][: self.n_segments]
        texts = tuple(df[c].astype(str).to_numpy(dtype=object) for c in cols)
        labels = df["label_id"].to_numpy(np.int32) if "label_id" in df else np.zeros(len(df), np.int32)
        ds = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(512)
        ds = ds.map(lambda t, y: (tuple(self.tokenize(x) for x in t), y), num_parallel_calls=AUTOTUNE)
        return ds.unbatch()

    def dataset(self, df: pd.DataFrame, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """Training (shuffle=True: reshuffled each epoch and bucketed by length) or evaluation batches (in order)."""
        ds = self.tokenized(df).cache()
        if shuffle:
            ds = ds.shuffle(len(df), seed=seed, reshuffle_each_iteration=True)
            boundaries = tf.constant(BUCKET_BOUNDARIES, tf.int64)

            def bucket(segments, _):
                length = tf.add_n([tf.size(s, tf.int64) for s in segments])
                return tf.reduce_sum(tf.cast(length > boundaries, tf.int64))

            ds = ds.group_by_window(bucket, lambda _, w: w.ragged_batch(batch_size), window_size=batch_size)
        else:
            ds = ds.ragged_batch(batch_size)
        return ds.map(lambda s, y: (self.pack(s), y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    # Bucketing can leave one partial batch per bucket at the end of an epoch.
    return -(-n_rows // batch_size)
