"""What every exporter's serving graph shares: the check texts, length-sorted chunks and character offsets.

Each exporter (classifier, regressor, multilabel, tagger, embedder, qa) builds its serving tf.Module from these and
publishes it with tfbert.export.publish; none imports another exporter for them.
"""
from __future__ import annotations

import tensorflow as tf

from tfbert.data.pipeline import TextPipeline

# Texts every text export is checked with (and warmed up on): empty, blank, plain, non-ASCII with controls, and
# longer than any window.
CHECK_TEXTS = ["", "   ", "a perfectly ordinary sentence", "Ünïcödé 👍🏽 日本語 \x00\x07", "word " * 400]
SERVE_CHUNK = 16  # examples per length-sorted chunk in the serving signatures


def text_batches(*texts):
    """Each serving input checked, when called, to be a vector of strings: a signature's [None] is not enforced on
    its callers (TF Serving, a loaded ConcreteFunction), so a [2, 2] request would be flattened into four answers
    and a scalar taken as a batch of one. The error names the input and both shapes."""
    out = [tf.ensure_shape(t, [None], name=f"check_{t.name.split(':')[0]}_is_a_vector") for t in texts]
    return out[0] if len(out) == 1 else out


def sorted_chunks(core, pipeline: TextPipeline, segments, chunk: int, width: int):
    """`core` (encoder inputs -> float [batch, width]) over a request in chunks of similar length, each padded only
    to its own longest; float32 [batch, width] in request order. chunk 0: the whole request as one batch.

    A request arrives in no particular order, so padding it as one batch to its longest text wastes most of
    the compute on short texts (tweets: ~45% padding at batch 64). Sorted chunks of `chunk` cut that;
    results go back to request order. Used inside the serving tf.functions of the classifier, regressor, embedder
    and QA exports.
    """
    if not chunk:
        return tf.cast(core(pipeline.pack(segments), training=False), tf.float32)
    lengths = tf.add_n([s.row_lengths() for s in segments])
    order = tf.argsort(lengths, stable=True)
    n = tf.size(order)
    chunks = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                            element_shape=tf.TensorShape([None, width]))
    for start in tf.range(0, n, chunk):
        idx = order[start:start + chunk]
        inputs = pipeline.pack([tf.gather(s, idx) for s in segments])
        chunks = chunks.write(start // chunk, tf.cast(core(inputs, training=False), tf.float32))
    return tf.gather(chunks.concat(), tf.argsort(order))  # back to request order


def window_chunks(core, pipeline: TextPipeline, windows: tf.RaggedTensor, chunk: int, pooled_width: int,
                  token_width: int):
    """`core` (encoder inputs -> (pooled float [b, pooled_width] or None, per position float [b, seq, token_width]
    or None)) over the rows of `windows` (wordpieces, [n, (pieces)]) in length-sorted chunks of `chunk`, each padded
    only to its own longest, as sorted_chunks does. Returns (pooled [n, pooled_width], the positions' values
    [pieces of all windows, token_width], less [CLS], [SEP] and padding), both in the windows' order: the tagger's
    windows (tfbert.export.tagger) and a multitask export's heads, pooled and per token, from one encoder pass."""
    lengths = windows.row_lengths()
    order = tf.argsort(lengths, stable=True)
    pooled = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                            element_shape=tf.TensorShape([None, pooled_width]))
    tokens = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                            element_shape=tf.TensorShape([None, token_width]))
    for start in tf.range(0, tf.size(order), chunk):
        rows = tf.gather(windows, order[start:start + chunk])
        per_window, per_token = core(pipeline.pack([rows]))
        n = tf.shape(rows.row_lengths())[0]
        pooled = pooled.write(start // chunk, tf.zeros([n, 0]) if per_window is None
                              else tf.cast(per_window, tf.float32))
        values = tf.zeros([n, tf.reduce_max(rows.row_lengths()) + 2, 0]) if per_token is None \
            else tf.cast(per_token, tf.float32)
        kept = tf.RaggedTensor.from_tensor(values[:, 1:], lengths=rows.row_lengths())
        tokens = tokens.write(start // chunk, kept.flat_values)
    back = tf.argsort(order)
    sorted_rows = tf.RaggedTensor.from_row_lengths(tokens.concat(), tf.gather(lengths, order), validate=False)
    return tf.gather(pooled.concat(), back), tf.gather(sorted_rows, back).flat_values


def require_offsets(preprocess, handle: str) -> None:
    from tfbert.encoders.registry import EncoderError
    if not hasattr(preprocess, "tokenize_with_offsets"):
        raise EncoderError(f"preprocess model {handle} has no tokenize_with_offsets, which NER exports need for "
                           "character offsets. Use an encoder converted by tfbert (the default, a Hugging Face "
                           "directory, or `python -m tfbert.encoders.convert`).")


def char_offsets(text, rows, *byte_offsets):
    """UTF-8 byte offsets into text[rows] -> character offsets (Python str indices), one tensor per argument: the
    number of characters that start before each byte offset (the NER and QA exports)."""
    _, char_bytes = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace")
    # One padding column past the longest text: searchsorted fails on a [0, 0] table (no rows of a batch whose
    # texts are all empty), and a column no offset reaches changes no count.
    char_bytes = tf.pad(char_bytes.to_tensor(tf.int64.max), [[0, 0], [0, 1]], constant_values=tf.int64.max)
    char_bytes = tf.gather(char_bytes, rows)
    return [tf.searchsorted(char_bytes, tf.cast(b, tf.int64)[:, None], side="left", out_type=tf.int64)[:, 0]
            for b in byte_offsets]
