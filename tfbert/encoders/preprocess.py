"""The TF Hub BERT preprocessing SavedModel, built on tensorflow_text, tokenizing as Hugging Face does.

Interface (as https://www.tensorflow.org/hub/common_saved_model_apis/text describes for BERT preprocessors):
  obj(strings)                          -> {input_word_ids, input_mask, input_type_ids}, int32 [batch, 128]
  obj.tokenize(strings)                 -> int32 RaggedTensor [batch, words, wordpieces]
  obj.tokenize_with_offsets(strings)    -> (the same ids, start and limit int64 byte offsets into the input strings)
  obj.tokenize.get_special_tokens_dict() -> {vocab_size, padding_id, start_of_sequence_id, end_of_segment_id, mask_id}
  obj.bert_pack_inputs([seg_a(, seg_b)], seq_length=N) -> the packed dict, round-robin truncated to N
The SavedModel needs only tensorflow and tensorflow_text to load (TF Serving 2.20+ embeds the text ops).

The ids are those of Hugging Face's tokenizer for the checkpoint (tokenizers' BertNormalizer, BertPreTokenizer and
WordPiece: what `AutoTokenizer` gives), not those of tensorflow_text's BertTokenizer, which case-folds (NFKC: "ß" ->
"ss", "ﬁ" -> "fi"), keeps U+FFFD (as [UNK]), breaks words at control and format characters instead of dropping them,
and counts the 100-character word limit in bytes. Everything before WordPiece acts on one character at a time, so it
is a table over all code points, computed at conversion from Python's unicodedata (`normalize_char`, `char_rules`)
and applied in the graph. tests/test_corpus_parity.py checks the ids against Hugging Face's on the built-in corpora
and a Unicode fuzz set; they differ only on characters whose Unicode data tokenizers has from other Unicode versions
than Python's (new combining marks, format characters and punctuation since Unicode 9; see docs/pages/guides/encoders.md).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text as text

DEFAULT_SEQ_LENGTH = 128
SPECIAL_TOKENS = {"padding_id": "[PAD]", "start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]",
                  "mask_id": "[MASK]"}
# Hugging Face finds these in the raw text and keeps each whole, as its own id (its added tokens; the same in
# transformers' Python tokenizer): "a[SEP]b" -> a [SEP] b.
SPLIT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_CHARS_PER_WORD = 100  # WordPiece's max_input_chars_per_word: a longer word (counted in characters) is [UNK]
# Code points surrounded by spaces as Chinese characters: tokenizers' BertNormalizer ranges (its sixth starts at
# 0x2B920; transformers' Python BertTokenizer has 0x2B820).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_MAP, _PAD, _FIXED, _HANGUL = range(4)  # char_rules kinds


def special_token_ids(vocab_file: str | Path) -> dict[str, int]:
    vocab = Path(vocab_file).read_text(encoding="utf-8").split("\n")
    index = {tok: i for i, tok in enumerate(vocab)}
    missing = [tok for tok in SPECIAL_TOKENS.values() if tok not in index]
    if missing:
        raise ValueError(f"{vocab_file}: special tokens {missing} are not in the vocabulary")
    ids = {key: index[tok] for key, tok in SPECIAL_TOKENS.items()}
    ids["vocab_size"] = len(vocab) - (vocab[-1] == "")
    return ids


def pack_inputs(segments, seq_length, special: dict[str, int]):
    """Round-robin truncates 1 or 2 tokenized segments to fit seq_length with [CLS]/[SEP], then pads."""
    segments = [s.merge_dims(-2, -1) if s.ragged_rank > 1 else s for s in segments]
    seq_length = tf.cast(seq_length, tf.int32)
    trimmed = text.RoundRobinTrimmer(max_seq_length=seq_length - len(segments) - 1).trim(segments)
    ids, type_ids = text.combine_segments(trimmed, start_of_sequence_id=special["start_of_sequence_id"],
                                          end_of_segment_id=special["end_of_segment_id"])
    word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length, pad_value=special["padding_id"])
    type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
    return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": tf.cast(mask, tf.int32),
            "input_type_ids": tf.cast(type_ids, tf.int32)}


class _SpecialTokens(tf.Module):
    def __init__(self, special: dict[str, int]):
        super().__init__()
        self._special = dict(special)
        self.__call__ = tf.function(lambda: {k: tf.constant(v, tf.int32) for k, v in self._special.items()},
                                    input_signature=[])


def _is_punctuation(ch: str) -> bool:
    """BertPreTokenizer's punctuation: ASCII non-alphanumeric symbols, and Unicode category P*."""
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or unicodedata.category(ch)[0] == "P"


def _is_cjk(cp: int) -> bool:
    return 0x3400 <= cp <= 0x2FA1F and any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _hangul(cp: int) -> str:
    """The canonical (NFD) decomposition of a Hangul syllable into 2 or 3 conjoining jamo."""
    s = cp - 0xAC00
    return chr(0x1100 + s // 588) + chr(0x1161 + s % 588 // 28) + (chr(0x11A7 + s % 28) if s % 28 else "")


def normalize_char(ch: str, lower_case: bool) -> str:
    """What Hugging Face's BertNormalizer and BertPreTokenizer make of one character, as text in which a space is a
    word break: "" (dropped), " " (whitespace), " , " (punctuation and CJK stand alone), "e" for "É", ...

    In tokenizers' order: clean_text drops NUL, U+FFFD and category C* except tab/newline/CR (it knows no category
    for unassigned code points, Cn, and keeps them) and makes whitespace a space; CJK characters are padded; with
    lower_case, accents are stripped (NFD, then Mn removed) and each character is lower-cased on its own (Python's
    str.lower of one character: "ß" stays, "İ" -> "i̇", "Σ" -> "σ" at a word's end too, as Rust's char::to_lowercase).
    """
    cp, cat = ord(ch), unicodedata.category(ch)
    if cat == "Cn" and not _is_cjk(cp):  # (the common case, first: most code points are unassigned)
        return ch
    if cp == 0 or cp == 0xFFFD or (cat[0] == "C" and cat != "Cn" and ch not in "\t\n\r"):
        return ""
    if ch.isspace():
        return " "
    s = f" {ch} " if _is_cjk(cp) else ch
    if lower_case:
        s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")
        s = "".join(c.lower() for c in s)
    return "".join(" " if c.isspace() else f" {c} " if _is_punctuation(c) else c for c in s)


@functools.lru_cache(maxsize=2)
def char_rules(lower_case: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """normalize_char over all code points as runs: (starts, kinds, deltas, fixed).

    Code point c lies in run r = searchsorted(starts, c, "right") - 1 and becomes, by kinds[r]: _MAP the one code
    point c + deltas[r]; _PAD the same between two spaces; _HANGUL its jamo; _FIXED fixed[r] (up to 3 code points,
    -1 padded: "" for a dropped character, " " for whitespace). About 4,000 runs.
    """
    starts, kinds, deltas, fixed = [], [], [], []
    previous = None
    for cp in range(0x110000):
        out = normalize_char(chr(cp), lower_case)
        if len(out) == 1 and out != " ":
            rule = (_MAP, ord(out) - cp, ())
        elif len(out) == 3 and out[0] == out[2] == " " and out[1] != " ":
            rule = (_PAD, ord(out[1]) - cp, ())
        elif 0xAC00 <= cp <= 0xD7A3 and out == _hangul(cp):
            rule = (_HANGUL, 0, ())
        elif len(out) <= 3:
            rule = (_FIXED, 0, tuple(map(ord, out)))
        else:
            raise ValueError(f"U+{cp:04X} normalizes to {len(out)} code points ({out!r}); the table holds 3")
        if rule != previous:
            starts.append(cp)
            kinds.append(rule[0])
            deltas.append(rule[1])
            fixed.append(list(rule[2]) + [-1] * (3 - len(rule[2])))
            previous = rule
    return (np.array(starts, np.int32), np.array(kinds, np.int32), np.array(deltas, np.int32),
            np.array(fixed, np.int32))


class _HuggingFaceTokenizer(tf.Module):
    """Hugging Face's BERT tokenization in TF ops: ids and byte offsets [start, limit) into the input strings.

    Each input character is normalized by char_rules (special-token text is kept whole), the results are joined and
    split at spaces into words, and words go through tensorflow_text's WordpieceTokenizer (a word of more than
    MAX_CHARS_PER_WORD characters is [UNK] first). WordPiece's offsets point into the normalized text, so they are
    mapped back through the per-character normalized byte lengths.
    """

    def __init__(self, table, vocab: set[str], lower_case: bool):
        super().__init__()
        self._rules = char_rules(lower_case)
        # A word over the limit is replaced by this filler, longer than any word WordPiece otherwise sees (a
        # character is at most 4 bytes), so WordPiece makes it one unknown token.
        self._long_word = "x" * (4 * MAX_CHARS_PER_WORD + 1)
        self._wordpiece = text.WordpieceTokenizer(table, token_out_type=tf.int64, unknown_token="[UNK]",
                                                  max_bytes_per_word=4 * MAX_CHARS_PER_WORD)
        # Special tokens found in the text are overwritten with same-length marks: 1 (first character), 2, ..., 3
        # (last); comparing with the text finds their characters. One pattern per length.
        present = [t for t in SPLIT_SPECIAL_TOKENS if t in vocab]
        self._special_marks = [("|".join(re.escape(t) for t in present if len(t) == n), "\x01" + "\x02" * (n - 2) + "\x03")
                               for n in sorted({len(t) for t in present})]

    def normalize(self, sentences):
        """-> (normalized strings [batch], byte offset of each input character [batch, (chars)], normalized byte
        length of each input character (flat, [chars]))."""
        starts, kinds, deltas, fixed = (tf.constant(a) for a in self._rules)
        codepoints, char_starts = tf.strings.unicode_decode_with_offsets(sentences, "UTF-8", errors="replace")
        cp = codepoints.flat_values
        run = tf.searchsorted(starts, cp, side="right") - 1
        kind = tf.expand_dims(tf.gather(kinds, run), -1)
        mapped = cp + tf.gather(deltas, run)
        none, space, s = tf.fill(tf.shape(cp), -1), tf.fill(tf.shape(cp), 32), cp - 0xAC00
        out = tf.where(kind == _MAP, tf.stack([mapped, none, none], -1),
                       tf.where(kind == _PAD, tf.stack([space, mapped, space], -1),
                                tf.where(kind == _HANGUL,
                                         tf.stack([0x1100 + s // 588, 0x1161 + s % 588 // 28,
                                                   tf.where(s % 28 > 0, 0x11A7 + s % 28, -1)], -1),
                                         tf.gather(fixed, run))))
        if self._special_marks:
            marked = sentences
            for pattern, marks in self._special_marks:
                marked = tf.strings.regex_replace(marked, pattern, marks)
            mark = tf.strings.unicode_decode(marked, "UTF-8", errors="replace").flat_values
            out = tf.where(tf.expand_dims(mark != cp, -1),  # kept as it is, a space before and after the token
                           tf.stack([tf.where(mark == 1, 32, -1), cp, tf.where(mark == 3, 32, -1)], -1), out)
        valid = out >= 0
        utf8_bytes = tf.where(valid, 1 + tf.cast(out >= 0x80, tf.int32) + tf.cast(out >= 0x800, tf.int32)
                              + tf.cast(out >= 0x10000, tf.int32), 0)
        # The output code points in order; string i's are those of its characters.
        ends = tf.concat([[0], tf.cumsum(tf.reduce_sum(tf.cast(valid, tf.int64), -1))], 0)
        per_string = tf.RaggedTensor.from_row_splits(tf.boolean_mask(out, valid),
                                                     tf.gather(ends, codepoints.row_splits), validate=False)
        return tf.strings.unicode_encode(per_string, "UTF-8"), char_starts, tf.reduce_sum(utf8_bytes, -1)

    def _words(self, normalized):
        """Words of normalized text (flat), with their row splits and byte offsets [begin, end) (flat); a word over
        MAX_CHARS_PER_WORD characters is replaced by the filler (it is then [UNK]), `long` says which."""
        words, begin, end = text.regex_split_with_offsets(normalized, " ")
        flat = words.flat_values
        long = tf.strings.length(flat, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        return tf.where(long, self._long_word, flat), words.row_splits, begin.flat_values, end.flat_values, long

    def tokenize(self, sentences):
        words, row_splits, _, _, _ = self._words(self.normalize(sentences)[0])
        ids = self._wordpiece.tokenize(words)  # [words, (pieces)]
        return tf.RaggedTensor.from_row_splits(tf.cast(ids, tf.int32), row_splits, validate=False)

    def tokenize_with_offsets(self, sentences):
        normalized, char_starts, norm_len = self.normalize(sentences)
        words, row_splits, begin, end, long = self._words(normalized)
        ids, piece_begin, piece_end = self._wordpiece.tokenize_with_offsets(words)  # [words, (pieces)]
        word = ids.value_rowids()  # of each piece; a long word's one [UNK] spans the whole word
        starts = tf.gather(begin, word) + piece_begin.flat_values
        limits = tf.where(tf.gather(long, word), tf.gather(end, word), starts - piece_begin.flat_values
                          + piece_end.flat_values)
        # Normalized byte b lies in original character c where norm_starts[c] <= b < norm_starts[c + 1]. Keys
        # 2 * norm_start - empty put a character that normalized to nothing (a dropped control character) just
        # before the next one, so a start never lands on it and a limit takes it in with the character it follows.
        per_char = char_starts.with_flat_values  # [batch, (chars)]
        norm_len = per_char(norm_len)
        norm_starts = tf.math.cumsum(norm_len, axis=-1, exclusive=True)
        keys = (2 * norm_starts - tf.cast(norm_len == 0, tf.int32)).to_tensor(tf.int32.max)
        orig_starts = tf.concat([char_starts, tf.cast(tf.expand_dims(tf.strings.length(sentences), -1), tf.int64)], axis=-1)
        orig_starts = orig_starts.to_tensor(-1)  # byte offset of each character, then the string's length
        # pieces per string, as [batch, (pieces)] for the batched searchsorted
        piece_splits = tf.gather(ids.row_splits, row_splits)
        per_string = lambda flat: tf.RaggedTensor.from_row_splits(flat, piece_splits, validate=False)  # noqa: E731

        def to_original(offsets, side):
            flat = per_string(offsets)
            char = tf.searchsorted(keys, 2 * tf.cast(flat, tf.int32).to_tensor(), side=side, out_type=tf.int64)
            char = tf.maximum(char - 1, 0) if side == "right" else char  # start: its character (0: padding);
            # limit: rounded up to a whole character
            byte = tf.gather(orig_starts, char, batch_dims=1)
            return ids.with_flat_values(tf.RaggedTensor.from_tensor(byte, flat.row_lengths()).flat_values)

        nest = lambda x: tf.RaggedTensor.from_row_splits(x, row_splits, validate=False)  # noqa: E731
        return (nest(tf.cast(ids, tf.int32)), nest(to_original(starts, "right")), nest(to_original(limits, "left")))


class _Tokenize(tf.Module):
    def __init__(self, tokenizer: _HuggingFaceTokenizer, special: dict[str, int]):
        super().__init__()
        self._tokenizer = tokenizer
        self.get_special_tokens_dict = _SpecialTokens(special)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        return self._tokenizer.tokenize(sentences)


class _TokenizeWithOffsets(tf.Module):
    """tokenize plus byte offsets [start, limit) of every wordpiece in the *original* input string.

    Normalization changes byte lengths ("É" -> "e", a zero-width space -> nothing, "한" -> three jamo), so offsets
    come from the per-character normalized lengths (see _HuggingFaceTokenizer.tokenize_with_offsets); the ids come
    from the same normalization and WordPiece as `tokenize`'s (tests check they are equal).
    """

    def __init__(self, tokenizer: _HuggingFaceTokenizer):
        super().__init__()
        self._tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        return self._tokenizer.tokenize_with_offsets(sentences)


class _PackInputs(tf.Module):
    def __init__(self, special: dict[str, int], default_seq_length: int):
        super().__init__()

        @tf.function(autograph=False)
        def call(inputs, seq_length=default_seq_length):
            return pack_inputs(inputs, seq_length, special)

        self.__call__ = call
        # One traced signature per (segment count, ragged rank) so the loaded function accepts all four.
        for ragged_rank in (1, 2):
            for n in (1, 2):
                call.get_concrete_function([tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)] * n,
                                           seq_length=tf.TensorSpec([], tf.int32))


class BertPreprocess(tf.Module):
    """Tokenizer + packer over a WordPiece vocabulary, saveable as a TF Hub preprocessing SavedModel."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool, default_seq_length: int = DEFAULT_SEQ_LENGTH):
        super().__init__()
        special = special_token_ids(vocab_file)
        # The vocab file becomes a SavedModel asset through the lookup table's initializer.
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(str(vocab_file), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), num_oov_buckets=1)
        vocab = set(Path(vocab_file).read_text(encoding="utf-8").split("\n"))
        tokenizer = _HuggingFaceTokenizer(table, vocab, do_lower_case)
        self.tokenize = _Tokenize(tokenizer, special)
        self.tokenize_with_offsets = _TokenizeWithOffsets(tokenizer)
        self.bert_pack_inputs = _PackInputs(special, default_seq_length)
        self._default_seq_length = default_seq_length
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        # Instance-assigned __call__ is only callable through the attribute before saving.
        return self.bert_pack_inputs.__call__([self.tokenize(sentences)], seq_length=self._default_seq_length)
