"""Masked-language-model examples in tf.data: BERT's 15% / 80-10-10 masking, optionally of whole words.

Texts are tokenized once with the encoder's own preprocess model (`tokenize`: [batch, words, wordpieces]), kept as
wordpiece ids plus the index of the word each piece belongs to, and packed per batch as [CLS] pieces [SEP] (one
text per sequence, cut to max_seq_length). Masks are drawn per batch with stateless random ops: training batches
take their seeds from a random dataset re-seeded each time the data is iterated (each epoch masks differently, a
seed repeats the whole run), held-out batches from (seed, batch index) (the same masks every time).

Choosing: each sequence gets n = share * its wordpieces predictions (rounded up or down at random, so the share is
exact on average) among its real wordpieces ([CLS], [SEP] and padding are never chosen). Units (wordpieces, or
whole words with whole-word masking) are taken in a random order while the pieces taken before a unit plus half of its own stay below n: exactly n wordpieces,
or whole words that cover about n pieces (Google's reference skips a word that would overshoot, which is
sequential and falls short of n). Of the chosen pieces, each independently: 80% become [MASK], 10% a
random id of the vocabulary, 10% stay as they are; all are predicted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfbert.data.pipeline import AUTOTUNE, length_grouped_batches

MASK_TOKEN_SHARE = 0.8  # of the chosen pieces: [MASK]
RANDOM_TOKEN_SHARE = 0.1  # a random id; the rest (0.1) keep their id


@dataclass(frozen=True)
class Masking:
    """How to mask, and the preprocess model's special ids it needs."""
    vocab_size: int
    mask_id: int
    cls_id: int
    sep_id: int
    pad_id: int
    share: float = 0.15
    whole_word: bool = False

    def __post_init__(self):
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"the mask share must lie between 0 and 1 (exclusive), not {self.share}")

    @classmethod
    def of(cls, preprocess, **kwargs) -> "Masking":
        """From a loaded TF Hub preprocess model's tokenize.get_special_tokens_dict()."""
        special = {k: int(v) for k, v in preprocess.tokenize.get_special_tokens_dict().items()}
        return cls(vocab_size=special["vocab_size"], mask_id=special["mask_id"],
                   cls_id=special["start_of_sequence_id"], sep_id=special["end_of_segment_id"],
                   pad_id=special["padding_id"], **kwargs)

    def settings(self) -> dict:
        return {"mask_share": self.share, "whole_word_masking": self.whole_word, "mask_token": MASK_TOKEN_SHARE,
                "random_token": RANDOM_TOKEN_SHARE, "kept": round(1 - MASK_TOKEN_SHARE - RANDOM_TOKEN_SHARE, 6)}


def pieces_and_words(tokenized: tf.RaggedTensor, max_pieces: int) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """[batch, (words), (pieces)] -> (ids, word index of each piece within its text), both [batch, (pieces)],
    cut to max_pieces."""
    ids = tokenized.merge_dims(1, 2)
    word = tokenized.values.value_rowids()  # of each piece, over all the batch's words
    first = tf.gather(tokenized.row_splits, ids.value_rowids())  # each piece's text's first word
    words = ids.with_flat_values(tf.cast(word - first, tf.int32))
    return ids[:, :max_pieces], words[:, :max_pieces]


def pack(ids: tf.RaggedTensor, words: tf.RaggedTensor, m: Masking):
    """-> ({input_word_ids, input_mask, input_type_ids}, word index per position: -1 at [CLS], [SEP], padding),
    padded to the batch's longest."""
    n = ids.nrows()
    column = lambda v: tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.constant(v, tf.int32)))  # noqa: E731
    packed = tf.concat([column(m.cls_id), tf.cast(ids, tf.int32), column(m.sep_id)], axis=1)
    word_ids = tf.concat([column(-1), words, column(-1)], axis=1).to_tensor(-1)
    word_ids_padded = packed.to_tensor(m.pad_id)
    mask = tf.sequence_mask(packed.row_lengths(), tf.shape(word_ids_padded)[1], dtype=tf.int32)
    return {"input_word_ids": word_ids_padded, "input_mask": mask,
            "input_type_ids": tf.zeros_like(word_ids_padded)}, word_ids


def choose(word_of: tf.Tensor, share: float, whole_word: bool, seed) -> tf.Tensor:
    """Bool [batch, length]: the positions to predict. word_of: word index per position, -1 where never chosen."""
    candidate = word_of >= 0
    length = tf.shape(word_of)[1]
    # Units in which positions are chosen: the position itself, or its word (as unit index + 1; 0: none).
    unit = tf.where(candidate, word_of if whole_word else tf.range(length)[tf.newaxis, :], -1) + 1
    n_units = tf.reduce_max(unit) + 1
    pieces = tf.math.bincount(unit, minlength=n_units, maxlength=n_units, axis=-1)[:, 1:]  # [batch, units]
    real = tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    # Rounded at random (share * 10 = 1.5 -> 1 or 2, even odds): exactly `share` on average, where BERT's
    # max(1, round(...)) is off by up to half a piece per sequence (13.96% of tweet-length texts in a test).
    n_pick = tf.floor(share * real + tf.random.stateless_uniform(tf.shape(real), seeds[0]))
    score = tf.random.stateless_uniform(tf.shape(pieces), seeds[1])
    score = tf.where(pieces > 0, score, 2.0)  # empty units last
    order = tf.argsort(score, axis=1)
    size = tf.cast(tf.gather(pieces, order, batch_dims=1), tf.float32)
    # A unit is taken while its middle lies below n: single wordpieces exactly n of them; whole words about n
    # pieces on average (taking words until n is reached gave 16.6% of the tweets' wordpieces instead of 15%).
    picked_sorted = tf.cumsum(size, axis=1, exclusive=True) + 0.5 * size < n_pick[:, tf.newaxis]
    picked = tf.gather(picked_sorted, tf.argsort(order, axis=1), batch_dims=1)  # back to unit order
    picked = tf.concat([tf.zeros_like(picked[:, :1]), picked], axis=1)  # unit 0: never
    return tf.gather(picked, unit, batch_dims=1) & candidate


def mask_batch(inputs: dict, word_of: tf.Tensor, m: Masking, seed):
    """-> (inputs with masked ids and masked_lm_positions, masked_lm_ids, masked_lm_weights), the last three
    [batch, predictions] padded with position 0 / id 0 / weight 0 to the batch's most predictions."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    chosen = choose(word_of, m.share, m.whole_word, seeds[0])
    ids = inputs["input_word_ids"]
    u = tf.random.stateless_uniform(tf.shape(ids), seeds[1])
    random_ids = tf.random.stateless_uniform(tf.shape(ids), seeds[2], minval=0, maxval=m.vocab_size, dtype=tf.int32)
    masked = tf.where(chosen & (u < MASK_TOKEN_SHARE), m.mask_id,
                      tf.where(chosen & (u < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE), random_ids, ids))
    positions = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(tf.shape(ids)[1]), tf.shape(ids)), chosen)
    labels = tf.ragged.boolean_mask(ids, chosen)
    weights = tf.ragged.boolean_mask(tf.ones_like(ids, tf.float32), chosen)
    return ({**inputs, "input_word_ids": masked, "masked_lm_positions": positions.to_tensor(0)},
            labels.to_tensor(0), weights.to_tensor(0.0))


class MaskedTexts:
    """Texts tokenized once (in memory), served as masked batches: `training()` (shuffled, grouped by length, masked
    anew each epoch) or `fixed()` (in order, the same masks every time: held-out evaluation)."""

    def __init__(self, texts, preprocess, masking: Masking, max_seq_length: int = 128, seed: int = 0):
        self.masking, self.seed = masking, int(seed)
        max_pieces = max_seq_length - 2  # [CLS] and [SEP]
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(np.asarray(list(texts), dtype=object), tf.string))
        ds = ds.batch(512).map(lambda t: pieces_and_words(preprocess.tokenize(t), 1 << 30), num_parallel_calls=AUTOTUNE)
        ids, words, lengths = [], [], []
        for i, w in ds:  # in order: num_parallel_calls keeps it
            lengths.append(i.row_lengths().numpy())
            ids.append(i[:, :max_pieces])
            words.append(w[:, :max_pieces])
        self.ids = tf.concat(ids, 0) if ids else tf.ragged.constant([[]], tf.int32)[:0]
        self.words = tf.concat(words, 0) if words else tf.ragged.constant([[]], tf.int32)[:0]
        full = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.n = len(full)
        # What one text per sequence leaves out, for the log and the metadata.
        self.cut = {"texts": self.n, "texts_cut": int((full > max_pieces).sum()), "wordpieces": int(full.sum()),
                    "wordpieces_cut": int(np.maximum(full - max_pieces, 0).sum())}
        self.empty = int((full == 0).sum())

    def training(self, batch_size: int) -> tf.data.Dataset:
        """Shuffled, length-grouped batches (exactly ceil(n / batch_size)), masked anew each time the dataset is
        iterated (each epoch of model.fit, each pass of a repeat): per-batch seeds come from a random dataset
        re-seeded per iteration, as the shuffles are, so a --seed repeats the whole run."""
        m = self.masking
        ds = tf.data.Dataset.from_tensor_slices((self.ids, self.words))
        ds = length_grouped_batches(ds, self.n, batch_size, lambda ids, _: ids.row_lengths(), seed=self.seed * 7919)
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).batch(2)

        def apply(batch, seed):
            inputs, word_of = pack(*batch, m)
            return mask_batch(inputs, word_of, m, seed)
        return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)

    def fixed(self, batch_size: int) -> tf.data.Dataset:
        m, seed = self.masking, self.seed

        def apply(i, batch):
            inputs, word_of = pack(*batch, m)
            return mask_batch(inputs, word_of, m, tf.stack([tf.constant(seed, tf.int64), i]))
        ds = tf.data.Dataset.from_tensor_slices((self.ids, self.words)).ragged_batch(batch_size)
        return ds.enumerate().map(apply, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
