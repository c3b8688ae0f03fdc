"""Export a trained tagger as a SavedModel that finds entities in raw strings (TF Serving layout, atomic, verified).

<output>/<name>/<version>/ holds saved_model.pb, variables/ and assets/tags.txt. One signature:
  serving_default(text: string [batch]) ->
    entity_text   string  [batch, max_entities]  the entity as written in the input ("" = padding)
    entity_type   string  [batch, max_entities]  e.g. "person" ("" = padding)
    entity_start  int64   [batch, max_entities]  character offset of its first character (-1 = padding)
    entity_end    int64   [batch, max_entities]  character offset just after it: text[start:end] (-1 = padding)
    entity_score  float32 [batch, max_entities]  mean over its words of the predicted tag's probability (0 = padding)
    num_entities  int32   [batch]
max_entities is the largest count in the batch (0 when no input has an entity). Offsets count Unicode code
points, as Python string indices do. Words are the tokenizer's own (whitespace and punctuation split), each
tagged by its first wordpiece; tags are read into entities the way seqeval reads them.
The texts' wordpieces run through the tagger as windows in length-sorted chunks (`window_probs`). Under --long-texts
truncate a text is one window, its first max_seq_length - 2 wordpieces (words past it are not tagged); under
windows (tfbert.data.windows.cut_windows, at most --max-windows per text) each word is tagged from the window where
it has most context on both sides (best_context), stitched back per text in request order; the metadata records
"long_texts" and "windows" (size, stride, max_windows, reach). For an encoder converted by tfbert the numeric part
served is the forward-only inference graph, once its tag probabilities match the trained core's at every wordpiece
of the check texts (tfbert.export.serving_core).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import TextPipeline
from tfbert.data.tagged import entity_types
from tfbert.data.windows import BEST_CONTEXT, best_context, cut_windows
from tfbert.export.base import SERVE_CHUNK, char_offsets, require_offsets, text_batches, window_chunks
from tfbert.export.publish import asset_source, publish_next_version, save_server, verify_in_fresh_process
from tfbert.export.serving_core import ServedHead, choose_serving_core
from tfbert.tasks.catalog import TAGGER_LONG_TEXTS

TAGS_FILE = "tags.txt"
OUTPUTS = ("entity_text", "entity_type", "entity_start", "entity_end", "entity_score", "num_entities")
# ASCII only: verify_in_fresh_process decodes string outputs as ASCII. Non-ASCII offsets are checked in-process.
CHECK_TEXTS = ["", "   ", "John Smith flew from New York to Paris with Apple Inc .", "word " * 400]
NON_ASCII_CHECK = ["Zoë Ünïcödé flew to São Paulo 👍🏽 with 日本語 friends \x00\x07 don't"]
# The --long-texts modes a tagger serves: every word is tagged, so none that skips the middle of a text.
_TEXT = tf.TensorSpec([None], tf.string, name="text")


def window_probs(core, pipe: TextPipeline, windows: tf.RaggedTensor, chunk: int, n_tags: int):
    """Tag probabilities of every position of every window: float32 [window pieces, n_tags], window after window,
    the windows run in length-sorted chunks (tfbert.export.base.window_chunks)."""
    _, logits = window_chunks(lambda x: (None, core(x, training=False)), pipe, windows, chunk, 0, n_tags)
    return tf.nn.softmax(logits, axis=-1)


def tag_windows(preprocess, pipe: TextPipeline, text):
    """The texts' wordpieces with byte offsets, and the windows the tagger reads them in: (ids [batch, words,
    pieces], starts, limits, pieces [batch, pieces] within reach, windows, window -> text, window start)."""
    ids, starts, limits = preprocess.tokenize_with_offsets(text)  # [batch, words, pieces], byte offsets
    pieces = ids.merge_dims(-2, -1)
    if pipe.long_texts == "windows":  # the pieces within the reach, cut into windows
        pieces = pieces[:, :pipe.reach]
        windows, item, start = cut_windows(pieces, pipe.window, pipe.stride, pipe.max_windows)
    else:  # each text is one window: its first pieces
        pieces = pieces[:, :pipe.window]
        windows, item, start = pieces, tf.range(pieces.nrows()), tf.zeros_like(pieces.row_lengths())
    return ids, starts, limits, pieces, windows, item, start


class TaggerServer(tf.Module):
    """Raw strings -> wordpieces with offsets -> trained tagger -> word tags -> entities with character spans."""

    def __init__(self, preprocess_handle: str, core, tags: list[str], inputs: InputSettings, tags_file: Path,
                 chunk: int = SERVE_CHUNK):
        super().__init__()
        self.preprocess = hub.load(preprocess_handle)
        require_offsets(self.preprocess, preprocess_handle)
        self.core = core
        self.chunk = chunk
        self.tags_asset = tf.saved_model.Asset(str(tags_file))
        if inputs.long_texts not in TAGGER_LONG_TEXTS:
            raise ValueError(f"a tagger reads every word: long_texts truncate or windows, not {inputs.long_texts!r}")
        self._pipe = inputs.pipeline(self.preprocess)
        self._n_tags = len(tags)
        self._tags = list(tags)

    @tf.function(input_signature=[_TEXT])
    def serve(self, text):
        text = text_batches(text)
        ids, starts, limits, pieces, windows, item, start = tag_windows(self.preprocess, self._pipe, text)
        probs = window_probs(self.core, self._pipe, windows, self.chunk, self._n_tags)
        read_at = best_context(pieces, item, start, windows.row_lengths())  # [batch, (pieces)] -> probs row
        return entities(text, ids, starts, limits, pieces, probs, read_at, self._tags)


def entities(text, ids, starts, limits, pieces, probs, read_at, tags: list[str]) -> dict:
    """The serving outputs (OUTPUTS) from the windows' tag probabilities `probs` [window pieces, tags]: each word
    tagged by its first wordpiece, read at `read_at`, and the tags read into entities as seqeval reads them (also a
    multitask export's tagger heads, tfbert.export.multitask)."""
    types = entity_types(tags)
    # Per tag id: its entity type id (-1 for O) and whether it is a B- tag.
    type_ids = [types.index(t[2:]) if t != "O" else -1 for t in tags]
    begins = [t.startswith("B-") for t in tags]
    # Words (flattened over the batch) whose first piece is read by a window.
    words = ids.values  # [words, pieces]
    row = ids.value_rowids()
    first = words.row_starts() - tf.gather(ids.merge_dims(-2, -1).row_splits, row)  # piece index in its text
    kept = first < tf.gather(pieces.row_lengths(), row)
    row, first = tf.boolean_mask(row, kept), tf.boolean_mask(first, kept)
    word_start = tf.boolean_mask(tf.gather(starts.flat_values, words.row_starts()), kept)
    word_end = tf.boolean_mask(tf.gather(limits.flat_values, words.row_limits() - 1), kept)
    word_probs = tf.gather(probs, tf.gather(read_at.flat_values, tf.gather(pieces.row_starts(), row) + first))
    tag = tf.argmax(word_probs, axis=-1, output_type=tf.int32)
    score = tf.reduce_max(word_probs, axis=-1)

    # seqeval's reading: a tagged word starts an entity if it is B-, or follows O or another type or row.
    type_of = tf.gather(tf.constant(type_ids, tf.int32), tag)
    same_row = (tf.range(tf.size(row)) > 0) & (row == tf.roll(row, 1, axis=0))
    prev_type = tf.where(same_row, tf.roll(type_of, 1, axis=0), -1)
    inside = type_of >= 0
    starts_entity = inside & (tf.gather(tf.constant(begins), tag) | (prev_type != type_of))
    entity_of_word = tf.cumsum(tf.cast(starts_entity, tf.int32)) - 1
    n = tf.reduce_sum(tf.cast(starts_entity, tf.int32))
    segment = tf.boolean_mask(entity_of_word, inside)
    byte_start = tf.math.unsorted_segment_min(tf.boolean_mask(word_start, inside), segment, n)
    byte_end = tf.math.unsorted_segment_max(tf.boolean_mask(word_end, inside), segment, n)
    entity_score = tf.math.unsorted_segment_mean(tf.boolean_mask(score, inside), segment, n)
    entity_row = tf.boolean_mask(row, starts_entity)
    entity_type = tf.gather(tf.constant(types), tf.boolean_mask(type_of, starts_entity))
    entity_text = tf.strings.substr(tf.gather(text, entity_row), byte_start, byte_end - byte_start)

    start, end = char_offsets(text, entity_row, byte_start, byte_end)

    batch = tf.shape(text, out_type=tf.int64)[0]

    def padded(values, pad):
        return tf.RaggedTensor.from_value_rowids(values, entity_row, nrows=batch).to_tensor(pad)

    return {"entity_text": padded(entity_text, ""), "entity_type": padded(entity_type, ""),
            "entity_start": padded(start, -1), "entity_end": padded(end, -1),
            "entity_score": padded(entity_score, 0.0),
            "num_entities": tf.math.bincount(tf.cast(entity_row, tf.int32), minlength=tf.cast(batch, tf.int32),
                                             maxlength=tf.cast(batch, tf.int32))}


def export_tagger(core, preprocess_handle: str, tags: list[str], base: str | Path, *,
                  inputs: InputSettings = InputSettings(), encoder_handle: str | None = None, check_texts=(),
                  info: dict | None = None, metadata: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` (= <output-dir>/<model-name>) and returns its path. `inputs`:
    long_texts truncate or windows (with their stride and cap, recorded in the metadata). `info` (a dict), if
    given, receives which graph is served (tfbert.export.serving_core, with the core's `encoder_handle`)."""
    recorded = inputs.metadata()
    if "windows" in recorded:  # a word's tag is read from its best window, not pooled over windows
        recorded["windows"]["pooling"] = BEST_CONTEXT
    info = {} if info is None else info
    texts = CHECK_TEXTS + NON_ASCII_CHECK + list(check_texts)
    return publish_next_version(base, lambda tmp: _write(tmp, core, preprocess_handle, tags, inputs, log,
                                                         encoder_handle, texts, info),
                                {"task": "ner", **(metadata or {}), "serving": "tagger", "tags": list(tags),
                                 **recorded, "signatures": ["serving_default"], "serving_graph": info}, log)


def _as_lists(outputs: dict) -> dict:
    return {k: (np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(v.numpy()).tolist()
                if v.dtype == tf.string else v.numpy().tolist()) for k, v in outputs.items()}


def _same(got: dict, expected: dict) -> bool:
    for key in OUTPUTS:
        a, b = np.array(got[key]), np.array(expected[key])
        if a.shape != b.shape or not (np.allclose(a, b, atol=1e-4) if key == "entity_score" else (a == b).all()):
            return False
    return True


def _write(tmp: Path, core, preprocess_handle, tags, inputs: InputSettings, log, encoder_handle,
           check_texts: list[str], info: dict) -> None:
    server = TaggerServer(preprocess_handle, core, tags, inputs, asset_source(tmp, TAGS_FILE, tags))
    server.core, facts = choose_serving_core(core, encoder_handle, server._pipe, check_texts,
                                             [ServedHead("tag_logits", "tokens", "tagger")], log)
    info.update(facts)
    calls = {"serving_default": {"text": CHECK_TEXTS}}
    save_server(tmp, server, {"serving_default": server.serve.get_concrete_function()}, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)["serving_default"]
    expected = _as_lists(server.serve(tf.constant(CHECK_TEXTS)))
    loaded = tf.saved_model.load(str(tmp)).signatures["serving_default"]
    non_ascii = _as_lists(loaded(text=tf.constant(NON_ASCII_CHECK)))
    spans_ok = all(NON_ASCII_CHECK[i][s:e] == t for i in range(len(NON_ASCII_CHECK))
                   for s, e, t in zip(non_ascii["entity_start"][i], non_ascii["entity_end"][i],
                                      non_ascii["entity_text"][i]) if s >= 0)
    if not _same(got, expected) or not _same(non_ascii, _as_lists(server.serve(tf.constant(NON_ASCII_CHECK)))) \
            or not spans_ok:
        raise RuntimeError(f"exported model answers differ from the trained model (got {got}, expected {expected})")
