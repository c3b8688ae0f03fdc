"""Training-data augmentation as TF ops in tf.data (--augment): a different copy of every training batch each epoch.

Operations, with S = --augment-strength, applied in this order:
  synonym  each word that has an entry in the --synonyms file is replaced, with probability S, by one of its synonyms
  delete   each word is dropped with probability S (a text keeps at least one word)
  swap     each word is picked with probability S; a text's picked words move one place along a random cycle, so each
           of them lands where another was (EDA's random swap in one step; the words are only reordered)
  cutoff   a span of ceil(S x length) consecutive wordpieces is dropped (never the whole segment)
  mask     each wordpiece is replaced by the preprocess model's [MASK] id with probability S
Words are the encoder tokenizer's words (punctuation marks are words of their own). Word operations run on the
cached, uncut tokenization; then each segment is cut to the window as --long-texts says, and the wordpiece
operations run on what the model sees. Pairs: each segment is augmented on its own.

Randomness: one int64 per batch from tf.data.Dataset.random(seed, rerandomize_each_iteration=True), i.e. a new
stream for every pass over the dataset (every epoch) and the same streams for the same seed; each operation draws
from stateless ops seeded with it. Only TextPipeline.dataset(..., augment=) applies it: validation, test and the
exported graph never see it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfbert.config import AUGMENT_OPS, ConfigError

OPS = AUGMENT_OPS  # in the order they are applied
WORD_OPS, PIECE_OPS = OPS[:3], OPS[3:]


def parse_ops(spec: str) -> tuple[str, ...]:
    """'swap,delete' -> ('delete', 'swap'), in the order they are applied (RunConfig.check refuses bad names)."""
    names = {s.strip() for s in spec.split(",")}
    if not names <= set(OPS):
        raise ConfigError(f"--augment {spec!r}: choose operations from {', '.join(OPS)} (comma-separated)")
    return tuple(n for n in OPS if n in names)


# --------------------------------------------------------------------------- the synonym file


def read_synonym_file(path) -> list[tuple[int, str, list[str]]]:
    """The --synonyms file: UTF-8, one entry per line `word = synonym, synonym, ...`; blank lines and lines starting
    with # are skipped. Returns (line number, word, synonyms); a bad line raises ConfigError naming file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--synonyms {path}: file not found") from None
    entries, seen = [], {}
    for number, line in enumerate(raw.splitlines(), 1):
        where = f"--synonyms {path}, line {number}"
        try:
            line = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None
        if not line or line.startswith("#"):
            continue
        word, sep, rest = line.partition("=")
        word, synonyms = word.strip(), [s.strip() for s in rest.split(",")]
        if not sep or not word or not all(synonyms):
            raise ConfigError(f"{where}: expected `word = synonym, synonym, ...`, got {line!r}")
        for w in [word, *synonyms]:
            if len(w.split()) != 1:
                raise ConfigError(f"{where}: {w!r} is not a single word (entries are one word each)")
        if word in seen:
            raise ConfigError(f"{where}: {word!r} was already given a line ({seen[word]}); put its synonyms on one line")
        seen[word] = number
        entries.append((number, word, synonyms))
    if not entries:
        raise ConfigError(f"--synonyms {path}: no entries (lines `word = synonym, synonym, ...`)")
    return entries


class SynonymTable:
    """The synonym file in wordpiece ids: a hash table from a word's ids (as the string "id id ...") to its row of
    synonyms, each synonym one word of the same tokenizer. Matching follows the tokenizer's normalisation (an
    uncased encoder matches "Good" to the entry "good")."""

    def __init__(self, path, preprocess):
        entries = read_synonym_file(path)
        special = {k: int(v) for k, v in preprocess.tokenize.get_special_tokens_dict().items()}
        words = [w for _, word, syns in entries for w in [word, *syns]]
        tokens = preprocess.tokenize(tf.constant(words))  # [n, words, pieces]
        counts = tokens.row_lengths().numpy()
        pieces = tokens.merge_dims(-2, -1).to_list()
        unk = _unknown_id(preprocess, special)
        i, keys, synonyms, lines = 0, [], [], {}
        for number, word, syns in entries:
            for w in [word, *syns]:
                if counts[i] != 1:
                    raise ConfigError(f"--synonyms {path}, line {number}: {w!r} is {counts[i]} words to the encoder's "
                                      "tokenizer, not one (it splits punctuation off)")
                if unk is not None and pieces[i] == [unk]:
                    raise ConfigError(f"--synonyms {path}, line {number}: {w!r} is not in the encoder's vocabulary "
                                      "(it tokenizes to [UNK])")
                i += 1
            ids = pieces[i - len(syns) - 1: i]
            key = " ".join(map(str, ids[0]))
            if key in lines:  # e.g. "Good" and "good" for an uncased encoder
                raise ConfigError(f"--synonyms {path}, line {number}: {word!r} is the same word to the encoder's "
                                  f"tokenizer as {lines[key][1]!r} on line {lines[key][0]}; put them on one line")
            lines[key] = (number, word)
            keys.append(key)
            synonyms.append(ids[1:])
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.range(len(keys), dtype=tf.int64)), -1)
        self.synonyms = tf.ragged.constant(synonyms, dtype=tokens.dtype, ragged_rank=2)  # [entries, (syns), (pieces)]


def _unknown_id(preprocess, special) -> int | None:
    """The [UNK] id: tokenize a character no BERT vocabulary has, as one word of one piece."""
    ids = preprocess.tokenize(tf.constant(["\U0001fae8"])).merge_dims(-2, -1)[0].numpy().tolist()
    return ids[0] if len(ids) == 1 and ids[0] not in special.values() else None


# --------------------------------------------------------------------------- the operations (ragged TF ops)


def _uniform(n, seed, k):
    """n uniforms in [0, 1), from the stateless stream k of `seed`."""
    return tf.random.stateless_uniform(tf.reshape(n, [1]), tf.random.experimental.stateless_fold_in(seed, k))


def delete_words(words: tf.RaggedTensor, share, seed) -> tf.RaggedTensor:
    """[batch, (words), (pieces)] -> each word dropped with probability `share`; a text keeps its likeliest word."""
    u = tf.RaggedTensor.from_row_splits(_uniform(tf.shape(words.values.row_splits)[0] - 1, seed, 0), words.row_splits)
    keep = (u >= share) | (u >= tf.expand_dims(tf.reduce_max(u, axis=1), 1))
    return tf.ragged.boolean_mask(words, keep)


def swap_words(words: tf.RaggedTensor, share, seed) -> tf.RaggedTensor:
    """Each word picked with probability `share`; within a text, the picked words (in a random order) each take the
    place of the next one, the last the first's. A text with one picked word is unchanged."""
    rows = words.value_rowids()
    n = tf.shape(rows, out_type=tf.int64)[0]
    picked = tf.where(_uniform(n, seed, 0) < share)[:, 0]  # flat word positions, by row
    picked_rows = tf.gather(rows, picked)
    order = tf.argsort(tf.cast(picked_rows, tf.float64) + tf.cast(tf.gather(_uniform(n, seed, 1), picked), tf.float64))
    cycle = tf.RaggedTensor.from_value_rowids(tf.gather(picked, order), tf.gather(picked_rows, order),
                                              nrows=words.nrows())
    source = tf.concat([cycle[:, 1:], cycle[:, :1]], axis=1).values
    moves = tf.tensor_scatter_nd_update(tf.range(n), tf.expand_dims(cycle.values, 1), source)
    return words.with_values(tf.gather(words.values, moves))


def replace_synonyms(words: tf.RaggedTensor, share, seed, synonyms: SynonymTable) -> tf.RaggedTensor:
    """Each word with an entry replaced, with probability `share`, by one of its synonyms chosen uniformly."""
    values = words.values  # [n words, (pieces)]
    n = tf.shape(values.row_splits, out_type=tf.int64)[0] - 1
    entry = synonyms.table.lookup(tf.strings.reduce_join(tf.strings.as_string(values), axis=-1, separator=" "))
    chosen = (entry >= 0) & (_uniform(n, seed, 0) < share)
    entry = tf.maximum(entry, 0)
    count = tf.gather(synonyms.synonyms.row_lengths(), entry)
    pick = tf.minimum(tf.cast(_uniform(n, seed, 1) * tf.cast(count, tf.float32), tf.int64), count - 1)
    flat = tf.gather(synonyms.synonyms.row_splits, entry) + pick  # index into synonyms.synonyms.values
    pool = tf.concat([values, synonyms.synonyms.values], axis=0)
    return words.with_values(tf.gather(pool, tf.where(chosen, n + flat, tf.range(n))))


def cut_off(pieces: tf.RaggedTensor, share, seed) -> tf.RaggedTensor:
    """[batch, (pieces)] -> a random span of ceil(share x length) wordpieces dropped from each row, at least one
    wordpiece kept."""
    length = pieces.row_lengths()
    span = tf.minimum(tf.cast(tf.math.ceil(share * tf.cast(length, tf.float32)), tf.int64),
                      tf.maximum(length - 1, 0))
    start = tf.cast(_uniform(pieces.nrows(), seed, 0) * tf.cast(length - span + 1, tf.float32), tf.int64)
    start = tf.minimum(start, length - span)
    position = tf.ragged.range(length)
    keep = (position < start[:, None]) | (position >= (start + span)[:, None])
    return tf.ragged.boolean_mask(pieces, keep)


def mask_pieces(pieces: tf.RaggedTensor, share, seed, mask_id: int) -> tf.RaggedTensor:
    """Each wordpiece replaced by `mask_id` with probability `share`."""
    u = _uniform(tf.shape(pieces.flat_values)[0], seed, 0)
    return pieces.with_flat_values(tf.where(u < share, tf.cast(mask_id, pieces.dtype), pieces.flat_values))


# --------------------------------------------------------------------------- the configured augmentation


@dataclass
class Augmentation:
    """The operations of --augment at one strength; `synonyms` is required for 'synonym'."""
    ops: tuple[str, ...]
    strength: float
    mask_id: int
    seed: int = 0
    synonyms: SynonymTable | None = None

    def __post_init__(self):
        if not 0 < self.strength < 1:
            raise ConfigError(f"--augment-strength must be in (0, 1), not {self.strength}")
        if "synonym" in self.ops and self.synonyms is None:
            raise ConfigError("--augment synonym needs --synonyms FILE")

    def words(self, words: tf.RaggedTensor, seed) -> tf.RaggedTensor:
        """The word operations on [batch, (words), (pieces)]."""
        for k, op in enumerate(WORD_OPS):
            s = tf.random.experimental.stateless_fold_in(seed, k)
            if op == "synonym" and op in self.ops:
                words = replace_synonyms(words, self.strength, s, self.synonyms)
            elif op == "delete" and op in self.ops:
                words = delete_words(words, self.strength, s)
            elif op == "swap" and op in self.ops:
                words = swap_words(words, self.strength, s)
        return words

    def pieces(self, pieces: tf.RaggedTensor, seed) -> tf.RaggedTensor:
        """The wordpiece operations on [batch, (pieces)]."""
        for k, op in enumerate(PIECE_OPS, len(WORD_OPS)):
            s = tf.random.experimental.stateless_fold_in(seed, k)
            if op == "cutoff" and op in self.ops:
                pieces = cut_off(pieces, self.strength, s)
            elif op == "mask" and op in self.ops:
                pieces = mask_pieces(pieces, self.strength, s, self.mask_id)
        return pieces

    def batches(self, ds: tf.data.Dataset, augment_batch) -> tf.data.Dataset:
        """Zips each batch of `ds` with a per-batch seed (new each pass, the same for the same seed) and maps
        `augment_batch(batch..., seed)` over it; the batch count (cardinality) is unchanged."""
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)

        def with_seed(batch, r):
            return augment_batch(*batch, tf.stack([r, tf.constant(self.seed, tf.int64)]))

        return tf.data.Dataset.zip((ds, seeds)).map(with_seed, num_parallel_calls=tf.data.AUTOTUNE)


def augmentation(config, preprocess) -> Augmentation | None:
    """The run's Augmentation from --augment, --augment-strength, --synonyms and --seed (None without --augment)."""
    if not config.augment:
        return None
    ops = parse_ops(config.augment)
    special = preprocess.tokenize.get_special_tokens_dict()
    synonyms = SynonymTable(config.synonyms, preprocess) if "synonym" in ops else None
    return Augmentation(ops, config.augment_strength, int(special["mask_id"]), config.seed, synonyms)

