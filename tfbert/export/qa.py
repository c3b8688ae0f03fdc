"""Extractive QA in the graph: windows, span decoding and character offsets; the exported SavedModel.

<output>/<name>/<version>/ holds saved_model.pb and variables/. One signature:
  serving_default(question: string [batch], context: string [batch]) ->
    answer      string  [batch]  the answer as written in the context ("" = no answer)
    start, end  int64   [batch]  character offsets (Python str indices): context[start:end] == answer (-1 = none)
    score       float32 [batch]  the answer's probability in its window, p(start) * p(end) (no answer: p([CLS]) ** 2
                                 product of the null start and end)
    has_answer  bool    [batch]  only for models trained with no-answer questions (SQuAD v2 style)

How (the same code answers the validation and test questions during training, so the export is what was scored):
the question's wordpieces (cut to --max-query-length) are paired with each window of the context's wordpieces
(tfbert.data.windows.cut_windows: windows of max_seq_length - 3 - max_query_length pieces overlapping by
--doc-stride), windows go through the trained model in length-sorted chunks (tfbert.export.base.sorted_chunks),
and each window's best span is the exact maximum of start + end logit over all context positions with
start <= end < start + --max-answer-length (a banded search over every pair, so no n-best cut-off can miss it).
A question's answer is the best span over its windows; v2 models compare that score with the null score ([CLS]
start + end, the lowest over the windows, as BERT's run_squad does) and answer only when the difference is above
the threshold tuned on validation. Offsets come from the preprocess model's tokenize_with_offsets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.pipeline import TextPipeline
from tfbert.data.qa import QaLayout
from tfbert.data.windows import cut_windows
from tfbert.export.base import char_offsets, require_offsets, sorted_chunks, text_batches
from tfbert.export.publish import publish_next_version, save_server, verify_in_fresh_process

NEG = -1e9  # logit of positions that cannot hold an answer
# The numeric part served: the trained core (tfbert.export.serving_core's inference graph has no span reader).
SERVING_GRAPH = {"graph": "trained", "reason": "the forward-only inference graph has no span reader (its padding mask)"}
MAX_WINDOWS = 256  # per context: 256 windows of 104 pieces (step 62 at 128) read ~16k wordpieces, ~12k words
SERVE_CHUNK = 32  # windows per model call
OUTPUTS = ("answer", "start", "end", "score", "has_answer")
_Q = tf.TensorSpec([None], tf.string, name="question")
_C = tf.TensorSpec([None], tf.string, name="context")
# ASCII only: verify_in_fresh_process decodes string outputs as ASCII. Non-ASCII offsets are checked in-process.
CHECK = {"question": ["Which person is mentioned?", "", "Where?", "who"],
         "context": ["John Smith flew from New York to Paris .", "an empty question", "", "word " * 400]}
NON_ASCII_CHECK = {"question": ["Who went to São Paulo?"] * 2,
                   "context": ["Zoë Ünïcödé flew to São Paulo 👍🏽 with 日本語 friends \x00\x07 don't", "日本語 " * 300]}


def question_pieces(preprocess, question, layout: QaLayout):
    return preprocess.tokenize(question).merge_dims(-2, -1)[:, :layout.max_query_length]


def context_pieces(preprocess, context):
    """Ragged wordpiece ids [batch, (pieces)] with each piece's UTF-8 byte start and limit in its context."""
    ids, starts, limits = preprocess.tokenize_with_offsets(context)
    return ids.merge_dims(-2, -1), starts.merge_dims(-2, -1), limits.merge_dims(-2, -1)


def best_spans(inputs: dict, logits, max_answer_length: int):
    """Per packed window: float32 [n, 6] = best span score (start + end logit; NEG*2 when the window has no
    context), its start and end positions, the null score, the span's probability and the null's."""
    logits = tf.cast(logits, tf.float32)
    s, e = logits[..., 0], logits[..., 1]
    positions = tf.range(tf.shape(s)[1])[None, :]
    last = tf.reduce_sum(inputs["input_mask"], 1, keepdims=True) - 1  # the final [SEP]
    context = (inputs["input_type_ids"] == 1) & (positions < last)
    s_ctx, e_ctx = tf.where(context, s, NEG), tf.where(context, e, NEG)
    k = max_answer_length
    # starts[:, j, m] = start logit at j - k + 1 + m: every start within k pieces before end j.
    starts = tf.signal.frame(tf.pad(s_ctx, [[0, 0], [k - 1, 0]], constant_values=NEG), k, 1, axis=1)
    total = tf.reshape(starts + e_ctx[:, :, None], [tf.shape(s)[0], -1])
    best = tf.argmax(total, axis=1, output_type=tf.int32)
    end = best // k
    start = tf.maximum(end - (k - 1) + best % k, 0)  # below 0 only for a window without context (no span)
    log_s, log_e = tf.nn.log_softmax(s, axis=-1), tf.nn.log_softmax(e, axis=-1)
    span_prob = tf.exp(tf.gather(log_s, start, batch_dims=1) + tf.gather(log_e, end, batch_dims=1))
    return tf.stack([tf.reduce_max(total, axis=1), tf.cast(start, tf.float32), tf.cast(end, tf.float32),
                     s[:, 0] + e[:, 0], span_prob, tf.exp(log_s[:, 0] + log_e[:, 0])], axis=1)


class _SpanCore:
    """A model core for sorted_chunks: encoder inputs -> per-window best spans [batch, 6]."""

    def __init__(self, core, max_answer_length: int):
        self.core, self.k = core, max_answer_length

    def __call__(self, inputs, training=False):
        return best_spans(inputs, self.core(inputs, training=training), self.k)


class QaReader(tf.Module):
    """Questions and contexts as raw strings -> the best span per question with its character offsets and its
    score against the null answer. The training loop scores validation/test through it; the export serves it."""

    def __init__(self, preprocess, core, layout: QaLayout, *, no_answer: bool, threshold: float = 0.0,
                 max_windows: int = MAX_WINDOWS, chunk: int = SERVE_CHUNK):
        super().__init__()
        self.preprocess, self.core, self.layout = preprocess, core, layout
        self.no_answer, self.max_windows, self.chunk = no_answer, max_windows, chunk
        # A variable: set after training (tuned on validation) and visible on the loaded export.
        self.threshold = tf.Variable(float(threshold), trainable=False, name="no_answer_threshold")
        self._pipe = TextPipeline(preprocess, layout.max_seq_length, has_pairs=True)

    @tf.function(input_signature=[_Q, _C])
    def spans(self, question, context):
        """Per question: span (its best span's text, "" if none), start/end (character offsets, -1 if none),
        valid (a span exists), diff (best span score - null score), span_prob and null_prob."""
        layout = self.layout
        q = question_pieces(self.preprocess, question, layout)
        ids, byte_starts, byte_limits = context_pieces(self.preprocess, context)
        windows, item, window_start = cut_windows(ids, layout.size, layout.step, self.max_windows)
        q = tf.gather(q, item)
        per_window = sorted_chunks(_SpanCore(self.core, layout.max_answer_length), self._pipe, [q, windows],
                                   self.chunk, 6)
        n = tf.shape(question, out_type=tf.int64)[0]
        score = per_window[:, 0]
        best = tf.math.unsorted_segment_max(score, item, n)
        n_windows = tf.shape(score, out_type=tf.int64)[0]
        chosen = tf.math.unsorted_segment_min(tf.where(score >= tf.gather(best, item), tf.range(n_windows), n_windows),
                                              item, n)
        null = tf.math.unsorted_segment_min(per_window[:, 3], item, n)  # every question has at least one window
        row = tf.gather(per_window, chosen)
        valid = row[:, 0] > NEG
        first = tf.gather(q.row_lengths(), chosen) + 2  # position of the window's first context piece
        base = tf.gather(window_start, chosen) - first + ids.row_starts()  # flat piece index = base + position
        flat_starts = tf.concat([byte_starts.flat_values, [0]], 0)  # padded: an empty batch still gathers
        flat_limits = tf.concat([byte_limits.flat_values, [0]], 0)
        size = tf.size(flat_starts, out_type=tf.int64) - 1

        def piece(position):
            at = tf.clip_by_value(base + tf.cast(position, tf.int64), 0, size)
            return tf.where(valid, at, size)

        byte_start = tf.gather(flat_starts, piece(row[:, 1]))
        byte_end = tf.where(valid, tf.gather(flat_limits, piece(row[:, 2])), byte_start)
        text = tf.strings.substr(context, byte_start, byte_end - byte_start)
        start, end = char_offsets(context, tf.range(n), byte_start, byte_end)
        return {"span": text, "start": tf.where(valid, start, -1), "end": tf.where(valid, end, -1), "valid": valid,
                "diff": tf.where(valid, row[:, 0] - null, NEG), "span_prob": row[:, 4], "null_prob": row[:, 5]}

    @tf.function(input_signature=[_Q, _C])
    def serve(self, question, context):
        question, context = text_batches(question, context)
        out = self.spans(question, context)
        has = out["valid"] & (out["diff"] > self.threshold) if self.no_answer else out["valid"]
        result = {"answer": tf.where(has, out["span"], ""), "start": tf.where(has, out["start"], -1),
                  "end": tf.where(has, out["end"], -1), "score": tf.where(has, out["span_prob"], out["null_prob"])}
        if self.no_answer:
            result["has_answer"] = has
        return result

    def read(self, questions: list[str], contexts: list[str], batch: int = 64) -> dict:
        """`spans` over Python lists, in batches: numpy arrays and span texts as str."""
        parts = []
        for i in range(0, len(questions), batch):
            out = self.spans(tf.constant(questions[i:i + batch], tf.string), tf.constant(contexts[i:i + batch], tf.string))
            parts.append({k: v.numpy() for k, v in out.items()})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else \
            {"span": np.zeros(0, object), "diff": np.zeros(0)}
        merged["span"] = [b.decode("utf-8", "replace") for b in merged["span"]]
        return merged


def export_qa(core, preprocess_handle: str, layout: QaLayout, base: str | Path, *, no_answer: bool,
              threshold: float, metadata: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` (= <output-dir>/<model-name>) and returns its path."""
    outputs = [o for o in OUTPUTS if no_answer or o != "has_answer"]
    return publish_next_version(
        base, lambda tmp: _write(tmp, core, preprocess_handle, layout, no_answer, threshold, log),
        {"task": "qa", **(metadata or {}), "serving": "qa", "signatures": ["serving_default"],
         "inputs": ["question", "context"], "outputs": outputs, "no_answer": no_answer,
         "threshold": float(threshold), "layout": layout.to_dict(), "serving_graph": SERVING_GRAPH}, log)


def _as_lists(outputs: dict) -> dict:
    return {k: ([b.decode("utf-8") for b in v.numpy()] if v.dtype == tf.string else v.numpy().tolist())
            for k, v in outputs.items()}


def _same(got: dict, expected: dict) -> bool:
    if set(got) != set(expected):
        return False
    return all(np.allclose(got[k], expected[k], atol=1e-4) if k == "score" else got[k] == expected[k] for k in got)


def _write(tmp: Path, core, preprocess_handle, layout, no_answer, threshold, log) -> None:
    preprocess = hub.load(preprocess_handle)
    require_offsets(preprocess, preprocess_handle)
    server = QaReader(preprocess, core, layout, no_answer=no_answer, threshold=threshold)
    calls = {"serving_default": CHECK}
    save_server(tmp, server, {"serving_default": server.serve.get_concrete_function()}, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)["serving_default"]
    expected = _as_lists(server.serve(**{k: tf.constant(v) for k, v in CHECK.items()}))
    loaded = tf.saved_model.load(str(tmp)).signatures["serving_default"]
    non_ascii = _as_lists(loaded(**{k: tf.constant(v) for k, v in NON_ASCII_CHECK.items()}))
    spans_ok = all(c[s:e] == a for c, s, e, a in zip(NON_ASCII_CHECK["context"], non_ascii["start"],
                                                      non_ascii["end"], non_ascii["answer"]) if s >= 0)
    in_process = _as_lists(server.serve(**{k: tf.constant(v) for k, v in NON_ASCII_CHECK.items()}))
    if not _same(got, expected) or not _same(non_ascii, in_process) or not spans_ok:
        raise RuntimeError(f"exported model answers differ from the trained model (got {got}, expected {expected}; "
                           f"non-ASCII: {non_ascii})")
