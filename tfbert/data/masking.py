"""Masked-language-model examples in tf.data: BERT's 15% / 80-10-10 masking, optionally of whole words.

Documents are tokenized once with the encoder's own preprocess model (`tokenize`: [batch, words, wordpieces]), kept
as wordpiece ids plus the index of the word each piece belongs to, built once into sequences (tfbert.data.instances:
one text per sequence, packed, or segment pairs) and padded per batch. Masks are drawn per batch with stateless random ops: training batches
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

from tfbert.data.instances import Segment
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


def pieces_and_words(tokenized: tf.RaggedTensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """[batch, (words), (pieces)] -> (ids, word index of each piece within its text), both [batch, (pieces)]."""
    ids = tokenized.merge_dims(1, 2)
    word = tokenized.values.value_rowids()  # of each piece, over all the batch's words
    first = tf.gather(tokenized.row_splits, ids.value_rowids())  # each piece's text's first word
    words = ids.with_flat_values(tf.cast(word - first, tf.int32))
    return ids, words


def pad(ids: tf.RaggedTensor, types: tf.RaggedTensor, words: tf.RaggedTensor, m: Masking):
    """Built sequences ([CLS] ... [SEP], tfbert.data.instances) -> ({input_word_ids, input_mask, input_type_ids},
    word index per position: -1 at [CLS], [SEP] and padding), padded to the batch's longest."""
    word_ids = ids.to_tensor(m.pad_id)
    mask = tf.sequence_mask(ids.row_lengths(), tf.shape(word_ids)[1], dtype=tf.int32)
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": types.to_tensor(0)}, words.to_tensor(-1)


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


PAIR_KEYS = ("next_sentence_labels", "next_sentence_weights")  # inputs of the pair objectives' loss


def tokenized_documents(documents, preprocess) -> list[list[Segment]]:
    """Documents (each a list of segment strings, or a string: one segment) -> their segments' wordpiece ids and
    word indices, tokenized once with the preprocess model; segments without a wordpiece are dropped."""
    documents = [[d] if isinstance(d, str) else list(d) for d in documents]
    flat = [s for d in documents for s in d]
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(np.asarray(flat, dtype=object), tf.string))
    ds = ds.batch(512).map(lambda t: pieces_and_words(preprocess.tokenize(t)), num_parallel_calls=AUTOTUNE)
    segments = []
    for ids, words in ds:  # in order: num_parallel_calls keeps it
        splits = ids.row_splits.numpy()
        flat_ids, flat_words = ids.flat_values.numpy().astype(np.int32), words.flat_values.numpy().astype(np.int32)
        segments += [Segment(flat_ids[a:b], flat_words[a:b]) for a, b in zip(splits[:-1], splits[1:])]
    out, k = [], 0
    for d in documents:
        out.append([s for s in segments[k:k + len(d)] if len(s)])
        k += len(d)
    return out


class MaskedTexts:
    """Documents tokenized once (in memory), built into sequences (tfbert.data.instances: `packing`, and the pairs
    of `objective` nsp or sop; mlm: none) once for the seed, served as masked batches: `training()` (shuffled,
    grouped by length, masked anew each epoch) or `fixed()` (in order, the same masks every time: held-out
    evaluation). Pair objectives add PAIR_KEYS to the inputs."""

    def __init__(self, documents, preprocess, masking: Masking, max_seq_length: int = 128, seed: int = 0,
                 objective: str = "mlm", packing: str = "none"):
        from tfbert.data.instances import pair_sequences, single_sequences

        self.masking, self.seed, self.objective = masking, int(seed), objective
        docs = tokenized_documents(documents, preprocess)
        m = masking
        if objective == "mlm":
            built = single_sequences(docs, max_seq_length, packing, m.cls_id, m.sep_id)
        else:
            built = pair_sequences(docs, max_seq_length, objective, m.cls_id, m.sep_id,
                                   np.random.default_rng([self.seed, 104]))
        self.n = len(built.lengths)
        as_ragged = lambda v: tf.RaggedTensor.from_row_lengths(v, built.lengths)  # noqa: E731
        self.ids, self.types, self.words = as_ragged(built.ids), as_ragged(built.types), as_ragged(built.words)
        self.labels, self.weights = built.labels, built.weights
        self.lengths = built.lengths
        # What the sequences leave out and how full they are, for the log and the metadata.
        self.cut = {**built.stats, "packing": packing if objective == "mlm" else "document"}
        self.unpacked_lengths = np.array([min(sum(len(s) for s in d), max_seq_length - 2) + 2 for d in docs])

    def _elements(self):
        return tf.data.Dataset.from_tensor_slices((self.ids, self.types, self.words, self.labels, self.weights))

    def _apply(self, batch, seed):
        m = self.masking
        ids, types, words, labels, weights = batch
        inputs, word_of = pad(ids, types, words, m)
        masked, mlm_labels, mlm_weights = mask_batch(inputs, word_of, m, seed)
        if self.objective != "mlm":
            masked = {**masked, PAIR_KEYS[0]: labels, PAIR_KEYS[1]: weights}
        return masked, mlm_labels, mlm_weights

    def training(self, batch_size: int) -> tf.data.Dataset:
        """Shuffled, length-grouped batches (exactly ceil(n / batch_size)), masked anew each time the dataset is
        iterated (each epoch of model.fit, each pass of a repeat): per-batch seeds come from a random dataset
        re-seeded per iteration, as the shuffles are, so a --seed repeats the whole run."""
        ds = length_grouped_batches(self._elements(), self.n, batch_size, lambda ids, *_: ids.row_lengths(),
                                    seed=self.seed * 7919)
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip((ds, seeds)).map(self._apply, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)

    def fixed(self, batch_size: int) -> tf.data.Dataset:
        seed = self.seed

        def apply(i, batch):
            return self._apply(batch, tf.stack([tf.constant(seed, tf.int64), i]))
        ds = self._elements().ragged_batch(batch_size)
        return ds.enumerate().map(apply, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)

    def real_token_share(self, batch_size: int) -> dict:
        """Real positions over all positions of one epoch's training batches (each padded to its longest), of
        these sequences and of one document per sequence cut to the window (the recipe without packing)."""
        def share(lengths):
            lengths = np.asarray(lengths, np.int64)
            rows = tf.RaggedTensor.from_row_lengths(tf.zeros(int(lengths.sum()), tf.int8), lengths)
            ds = tf.data.Dataset.from_tensor_slices(rows)
            ds = length_grouped_batches(ds, len(lengths), batch_size, lambda r: r.row_lengths(), seed=self.seed)
            real = padded = 0
            for batch in ds:
                n = batch.row_lengths().numpy()
                real, padded = real + int(n.sum()), padded + int(n.max()) * len(n)
            return round(real / padded, 4) if padded else None
        return {"sequences": share(self.lengths), "one_document_per_sequence": share(self.unpacked_lengths)}
