"""The TF Hub BERT preprocessing SavedModel, built on tensorflow_text.

Interface (as https://www.tensorflow.org/hub/common_saved_model_apis/text describes for BERT preprocessors):
  obj(strings)                          -> {input_word_ids, input_mask, input_type_ids}, int32 [batch, 128]
  obj.tokenize(strings)                 -> int32 RaggedTensor [batch, words, wordpieces]
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
        self.bert_pack_inputs = _PackInputs(special, default_seq_length)
        self._default_seq_length = default_seq_length
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, sentences):
        # Instance-assigned __call__ is only callable through the attribute before saving.
        return self.bert_pack_inputs.__call__([self.tokenize(sentences)], seq_length=self._default_seq_length)
