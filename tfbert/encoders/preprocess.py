"""The TF Hub BERT preprocessing SavedModel, built on tensorflow_text.

Interface (as https://www.tensorflow.org/hub/common_saved_model_apis/text describes for BERT preprocessors):
  obj(strings)                          -> {input_word_ids, input_mask, input_type_ids}, int32 [batch, 128]
  obj.tokenize(strings)                 -> int32 RaggedTensor [batch, words, wordpieces]
  obj.tokenize_with_offsets(strings)    -> (the same ids, start and limit int64 byte offsets into the input strings)
  obj.tokenize.get_special_tokens_dict() -> {vocab_size, padding_id, start_of_sequence_id, end_of_segment_id, mask_id}
  obj.bert_pack_inputs([seg_a(, seg_b)], seq_length=N) -> the packed dict, round-robin truncated to N
The SavedModel needs only tensorflow and tensorflow_text to load (TF Serving 2.20+ embeds the text ops).
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text as text

DEFAULT_SEQ_LENGTH = 128
SPECIAL_TOKENS = {"padding_id": "[PAD]", "start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]",
                  "mask_id": "[MASK]"}


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


class _Tokenize(tf.Module):
    def __init__(self, tokenizer: text.BertTokenizer, special: dict[str, int]):
        super().__init__()
        self._tokenizer = tokenizer
        self.get_special_tokens_dict = _SpecialTokens(special)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        return tf.cast(self._tokenizer.tokenize(sentences), tf.int32)


def _normalize_chars(chars, lower_case: bool):
    """Per character, what BertTokenizer's basic tokenizer does to the whole string before splitting it."""
    if lower_case:  # the same three steps as text.BasicTokenizer.lower_case
        chars = text.normalize_utf8(text.case_fold_utf8(chars), "NFD")
        chars = tf.strings.regex_replace(chars, r"\p{Mn}", "")
    return tf.strings.regex_replace(chars, r"\p{Cc}|\p{Cf}", " ")


class _TokenizeWithOffsets(tf.Module):
    """tokenize plus byte offsets [start, limit) of every wordpiece in the *original* input string.

    tensorflow_text's own offsets point into the text after case folding, NFD, accent and control-character
    removal, which changes byte lengths ("É" -> "e", "ß" -> "ss", a zero-width joiner -> " " or nothing).
    So each character is normalized on its own, the pieces are joined and tokenized by a tokenizer that
    normalizes nothing more, and offsets are mapped back through the per-character byte lengths. Case folding,
    NFD and accent stripping act per character, so the ids equal those of `tokenize` (tests check this).
    """

    def __init__(self, tokenizer: text.BertTokenizer, lower_case: bool):
        super().__init__()
        self._tokenizer = tokenizer  # built with lower_case=False: the input arrives normalized
        self._lower_case = lower_case

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        codepoints, char_starts = tf.strings.unicode_decode_with_offsets(sentences, "UTF-8", errors="replace")
        chars = tf.strings.unicode_encode(tf.expand_dims(codepoints, -1), "UTF-8")  # [batch, chars]
        normalized = _normalize_chars(chars, self._lower_case)
        ids, starts, limits = self._tokenizer.tokenize_with_offsets(tf.strings.reduce_join(normalized, axis=-1))
        # Normalized byte b lies in original character c where norm_starts[c] <= b < norm_starts[c + 1]. Keys
        # 2 * norm_start - empty put a character that normalized to nothing (a stripped accent) just before
        # the next one, so a start never lands on it and a limit takes it in with the character it follows.
        norm_len = tf.strings.length(normalized)
        norm_starts = tf.math.cumsum(norm_len, axis=-1, exclusive=True)
        keys = (2 * norm_starts - tf.cast(norm_len == 0, tf.int32)).to_tensor(tf.int32.max)
        orig_starts = tf.concat([char_starts, tf.cast(tf.expand_dims(tf.strings.length(sentences), -1), tf.int64)], axis=-1)
        orig_starts = orig_starts.to_tensor(-1)  # byte offset of each character, then the string's length

        def to_original(offsets, side):
            flat = offsets.merge_dims(-2, -1)  # [batch, pieces]
            char = tf.searchsorted(keys, 2 * tf.cast(flat, tf.int32).to_tensor(), side=side, out_type=tf.int64)
            char = tf.maximum(char - 1, 0) if side == "right" else char  # start: its character (0: padding);
            # limit: rounded up to a whole character
            byte = tf.gather(orig_starts, char, batch_dims=1)
            return offsets.with_flat_values(tf.RaggedTensor.from_tensor(byte, flat.row_lengths()).flat_values)

        return tf.cast(ids, tf.int32), to_original(starts, "right"), to_original(limits, "left")


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
        tokenizer = text.BertTokenizer(table, token_out_type=tf.int64, lower_case=do_lower_case)
        self.tokenize = _Tokenize(tokenizer, special)
        self.tokenize_with_offsets = _TokenizeWithOffsets(
            text.BertTokenizer(table, token_out_type=tf.int64, lower_case=False), do_lower_case)
        self.bert_pack_inputs = _PackInputs(special, default_seq_length)
        self._default_seq_length = default_seq_length
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        # Instance-assigned __call__ is only callable through the attribute before saving.
        return self.bert_pack_inputs.__call__([self.tokenize(sentences)], seq_length=self._default_seq_length)
