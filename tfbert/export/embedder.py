"""Export an encoder as a sentence-embedding SavedModel that serves raw strings (TF Serving layout, atomic, verified).

Signatures:
  serving_default(text: string[batch])              -> embedding float32[batch, hidden]   (L2-normalised)
  serving_similarity(text: string[batch], text_b)   -> similarity float32[batch]          (cosine, in [-1, 1])
The embedding is the mean of the encoder's sequence_output over the real tokens ([CLS] and [SEP] included,
padding excluded), then L2-normalised: the pooling the default encoder's checkpoint was trained with
(sentence-transformers' Transformer -> Pooling(mean) -> Normalize). Texts are tokenized one segment each and cut at
`max_seq_length` wordpieces, as sentence-transformers does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.pipeline import TextPipeline
from tfbert.export.base import CHECK_TEXTS, SERVE_CHUNK, sorted_chunks, text_batches
from tfbert.export.publish import publish_next_version, save_server, verify_in_fresh_process

_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_B = tf.TensorSpec([None], tf.string, name="text_b")
EMBEDDING, SIMILARITY = "embedding", "similarity"


def mean_pooled(sequence_output, input_mask):
    """Mean over the positions where input_mask is 1, L2-normalised; float32 [batch, hidden]."""
    mask = tf.cast(input_mask, tf.float32)[:, :, None]
    total = tf.reduce_sum(tf.cast(sequence_output, tf.float32) * mask, axis=1)
    return tf.math.l2_normalize(total / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9), axis=1)


class EmbedderServer(tf.Module):
    """Raw strings -> preprocess model -> encoder -> mean pooling over real tokens -> L2 normalisation."""

    def __init__(self, preprocess_handle: str, encoder, max_seq_length: int, chunk: int = SERVE_CHUNK):
        super().__init__()
        self.chunk = chunk  # 0: the whole request as one batch
        self.preprocess = hub.load(preprocess_handle)
        self.encoder = encoder  # a Keras layer (tfbert.encoders.layer.EncoderLayer): inputs -> dict of outputs
        self.width = int(encoder(self._probe(), training=False)["sequence_output"].shape[-1])
        self.pipeline = TextPipeline(self.preprocess, max_seq_length, has_pairs=False, pad_multiple=1)

    def _probe(self):
        return {k: tf.ones([1, 2], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}

    def _embed(self, inputs, training=False):
        return mean_pooled(self.encoder(inputs, training=False)["sequence_output"], inputs["input_mask"])

    def _embeddings(self, text):
        return sorted_chunks(self._embed, self.pipeline, [self.pipeline.tokenize(text)], self.chunk, self.width)

    @tf.function(input_signature=[_TEXT])
    def serve(self, text):
        text = text_batches(text)
        return {EMBEDDING: self._embeddings(text)}

    @tf.function(input_signature=[_TEXT, _TEXT_B])
    def serve_similarity(self, text, text_b):
        text, text_b = text_batches(text, text_b)
        # Both sides in one pass through the encoder: twice the batch, half the calls.
        both = self._embeddings(tf.concat([text, text_b], axis=0))
        a, b = tf.split(both, 2, axis=0)
        return {SIMILARITY: tf.reduce_sum(a * b, axis=1)}


def export_embedder(encoder, preprocess_handle: str, base: str | Path, *, max_seq_length: int,
                    metadata: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` and returns its path. `encoder`: the encoder as a Keras layer, with
    the weights to serve (the converted checkpoint's, or a fine-tuned run's)."""
    return publish_next_version(
        base, lambda tmp: _write(tmp, encoder, preprocess_handle, max_seq_length, log),
        {"task": "embedding", **(metadata or {}), "serving": "embedder", "labels": [EMBEDDING],
         "signatures": ["serving_default", "serving_similarity"], "pooling": "mean over real tokens, L2-normalised",
         "max_seq_length": int(max_seq_length)}, log)


def _write(tmp: Path, encoder, preprocess_handle, max_seq_length, log) -> None:
    server = EmbedderServer(preprocess_handle, encoder, max_seq_length)
    signatures = {"serving_default": server.serve.get_concrete_function(),
                  "serving_similarity": server.serve_similarity.get_concrete_function()}
    calls = {"serving_default": {"text": CHECK_TEXTS},
             "serving_similarity": {"text": CHECK_TEXTS, "text_b": CHECK_TEXTS[::-1]}}
    save_server(tmp, server, signatures, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)
    expected = server.serve(tf.constant(CHECK_TEXTS))[EMBEDDING].numpy()
    embeddings = np.array(got["serving_default"][EMBEDDING], dtype=np.float64)
    if embeddings.shape != expected.shape or not np.isfinite(embeddings).all() \
            or np.abs(embeddings - expected).max() > 1e-4 or np.abs(np.linalg.norm(embeddings, axis=1) - 1).max() > 1e-3:
        raise RuntimeError(f"exported embeddings differ from the in-process encoder's (shape {embeddings.shape}, "
                           f"expected {expected.shape})")
    similarity = np.array(got["serving_similarity"][SIMILARITY], dtype=np.float64)
    if np.abs(similarity - (expected * expected[::-1]).sum(1)).max() > 1e-4:
        raise RuntimeError("exported similarities are not the cosine of the exported embeddings")
