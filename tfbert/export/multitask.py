"""Export a multitask model (tfbert.tasks.multitask) as one SavedModel that serves every head from one encoder pass.

<output>/<name>/<version>/ holds saved_model.pb and variables/. Signatures, each on raw strings:
  serving_<head>(text) -> that head's outputs, named as its single-task export names them (a classifier head:
                          probabilities, label, label_id; multi-label: probabilities, labels, num_labels; regression:
                          score), so the head's own client (tfbert.serving) reads it
  serving_default(text) -> every head's outputs, keyed "<head>_<output>"
Each request is tokenized once and runs the encoder once, in the length-sorted chunks of every text export
(tfbert.export.base.sorted_chunks): the core outputs the heads' logits side by side, [batch, sum of head widths],
and each head's output stage (the same function its single-task server calls) reads its columns. The metadata's
"heads" lists each head's task, serving kind, labels or target, thresholds and settings; "test_metrics" holds each
head's. For an encoder converted by tfbert the numeric part served is the forward-only inference graph with every
head, once each head's answers match the trained core's on the check texts (tfbert.export.serving_core); otherwise
the trained core. The metadata's "serving_graph" says which.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.inputs import InputSettings
from tfbert.data.windows import best_context
from tfbert.export.base import CHECK_TEXTS, SERVE_CHUNK, require_offsets, sorted_chunks, text_batches, window_chunks
from tfbert.export.classifier import check_decision, classifier_outputs
from tfbert.export.multilabel import OUTPUTS as MULTILABEL_OUTPUTS
from tfbert.export.multilabel import multilabel_outputs
from tfbert.export.publish import publish_next_version, save_server, verify_in_fresh_process
from tfbert.export.regressor import OUTPUT as REGRESSOR_OUTPUT
from tfbert.export.regressor import regressor_outputs
from tfbert.export.serving_core import ANSWERS, ServedHead, choose_serving_core
from tfbert.export.tagger import OUTPUTS as TAGGER_OUTPUTS
from tfbert.export.tagger import entities, tag_windows

_TEXT = tf.TensorSpec([None], tf.string, name="text")
KINDS = tuple(ANSWERS)  # the serving kinds a head can have


def head_width(head: dict) -> int:
    return 1 if head["serving"] == "regressor" else len(head["tags" if head["serving"] == "tagger" else "labels"])


class HeadOutputs(tf.Module):
    """One head's output stage on its logits columns; a classifier head's temperature and threshold are variables,
    as in its single-task export."""

    def __init__(self, name: str, head: dict):
        super().__init__(name=f"head_{name}")
        if head["serving"] not in KINDS:
            raise ValueError(f"head {name!r}: serving kind {head['serving']!r} is not one of {KINDS}")
        self.kind, self.width = head["serving"], head_width(head)
        self._labels = list(head.get("labels", []))
        if self.kind == "classifier":
            check_decision(self._labels, head.get("temperature", 1.0), head.get("threshold"))
            self.temperature = tf.Variable(float(head.get("temperature", 1.0)), trainable=False, name="temperature")
            self.threshold = None if head.get("threshold") is None else tf.Variable(
                float(head["threshold"]), trainable=False, name="threshold")
        elif self.kind == "tagger":
            self._tags = list(head["tags"])
        elif self.kind == "multilabel":
            self._thresholds = np.asarray(head["thresholds"], np.float32)
            if self._thresholds.shape != (self.width,):
                raise ValueError(f"head {name!r}: {self.width} labels but {self._thresholds.size} thresholds")
        else:
            self._target = (float(head["target"]["mean"]), float(head["target"]["std"]))

    @property
    def per_token(self) -> bool:
        return self.kind == "tagger"

    def __call__(self, logits, tagged=None) -> dict:
        """`logits`: this head's columns; a tagger head's are per wordpiece of the windows, with `tagged` the
        tokenization they came from (tfbert.export.tagger.entities)."""
        if self.kind == "tagger":
            ids, starts, limits, pieces, text, read_at = tagged
            return entities(text, ids, starts, limits, pieces, tf.nn.softmax(logits, axis=-1), read_at, self._tags)
        if self.kind == "classifier":
            return classifier_outputs(logits, self._labels, self.temperature, self.threshold)
        if self.kind == "multilabel":
            return multilabel_outputs(logits, self._labels, self._thresholds)
        return regressor_outputs(logits[:, 0], *self._target)


class MultitaskServer(tf.Module):
    """Raw strings -> preprocess model -> the shared core (every head's logits) -> each head's output stage."""

    def __init__(self, preprocess_handle: str, core, heads: dict[str, dict], inputs: InputSettings,
                 chunk: int = SERVE_CHUNK):
        super().__init__()
        self.chunk = chunk
        self.preprocess = hub.load(preprocess_handle)
        self.core = core  # Keras model: encoder inputs -> [head logits...], in the order of `heads`
        self.names = list(heads)
        self.heads = [HeadOutputs(name, head) for name, head in heads.items()]
        if any(h.per_token for h in self.heads):
            require_offsets(self.preprocess, preprocess_handle)
            if inputs.long_texts != "truncate":
                raise ValueError(f"a multitask model with a tagger head reads long_texts truncate, not "
                                 f"{inputs.long_texts!r}")
        self.single = inputs.pipeline(self.preprocess)
        self._pooled = sum(h.width for h in self.heads if not h.per_token)
        self._tokens = sum(h.width for h in self.heads if h.per_token)

    def _split(self, inputs, training=False):
        """The core's outputs as (pooled heads' logits side by side [b, pooled], tagger heads' [b, seq, tokens])."""
        outputs = [tf.cast(o, tf.float32) for o in tf.nest.flatten(self.core(inputs, training=training))]
        pooled = [o for o, h in zip(outputs, self.heads) if not h.per_token]
        tokens = [o for o, h in zip(outputs, self.heads) if h.per_token]
        return (tf.concat(pooled, -1) if pooled else None), (tf.concat(tokens, -1) if tokens else None)

    def answers(self, text) -> dict[str, dict]:
        """Head name -> its outputs, for one batch of texts: one tokenization and one encoder pass for all."""
        text = text_batches(text)
        pipe, tagged = self.single, None
        if self._tokens:  # the tagger's tokenization with offsets; every text one window (truncate)
            ids, starts, limits, pieces, windows, item, start = tag_windows(self.preprocess, pipe, text)
            pooled, tokens = window_chunks(self._split, pipe, windows, self.chunk, self._pooled, self._tokens)
            tagged = (ids, starts, limits, pieces, text, best_context(pieces, item, start, windows.row_lengths()))
        else:
            pooled = pipe.per_text(lambda s: sorted_chunks(lambda x, training: self._split(x, training)[0], pipe, s,
                                                           self.chunk, self._pooled), pipe.segments(text))
        out, at_pooled, at_tokens = {}, 0, 0
        for name, head in zip(self.names, self.heads):
            if head.per_token:
                out[name] = head(tokens[:, at_tokens:at_tokens + head.width], tagged)
                at_tokens += head.width
            else:
                out[name] = head(pooled[:, at_pooled:at_pooled + head.width])
                at_pooled += head.width
        return out

    @tf.function(input_signature=[_TEXT])
    def serve(self, text):
        return {f"{name}_{key}": value for name, outputs in self.answers(text).items()
                for key, value in outputs.items()}

    def head_signature(self, name: str):
        """serving_<name>: one head's outputs under its own output names."""
        return tf.function(lambda text: self.answers(text)[name], input_signature=[_TEXT]).get_concrete_function()


def served_head(name: str, head: dict) -> ServedHead:
    """A head's logits layer in the multitask core (tfbert.tasks.multitask names each head's layers "<name>_..."),
    what it reads (a pooled head: its settings' pooling) and how its answers are compared."""
    if head["serving"] == "tagger":
        return ServedHead(f"{name}_tag_logits", "tokens", "tagger")
    return ServedHead(f"{name}_logits", head.get("settings", {}).get("pooling", "pooled"), head["serving"])


def export_multitask(core, preprocess_handle: str, heads: dict[str, dict], base: str | Path, *,
                     inputs: InputSettings = InputSettings(), encoder_handle: str | None = None, check_texts=(),
                     info: dict | None = None, metadata: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` and returns its path. `heads`: name -> {"serving": classifier,
    multilabel, regressor or tagger; "labels" (and "temperature", "threshold" / "thresholds"), "tags" or "target":
    {mean, std}; anything else the head's client reads (task, settings)}, in the order of `core`'s outputs. `info`
    (a dict), if given, receives which graph is served (tfbert.export.serving_core, with `encoder_handle`)."""
    texts = CHECK_TEXTS + list(check_texts)
    info = {} if info is None else info
    outputs = [f"{name}_{key}" for name, head in heads.items() for key in _output_keys(head["serving"])]
    signatures = ["serving_default", *(f"serving_{name}" for name in heads)]
    return publish_next_version(
        base, lambda tmp: _write(tmp, core, preprocess_handle, heads, inputs, texts, log, encoder_handle, info),
        {"task": "multitask", **(metadata or {}), "serving": "multitask",
         "heads": {name: {**head, "signatures": ["serving_default"]} for name, head in heads.items()},
         "outputs": outputs, "signatures": signatures, "serving_graph": info, **inputs.metadata()},
        log)


def _output_keys(kind: str) -> tuple[str, ...]:
    return {"classifier": ("probabilities", "label_id", "label"), "multilabel": MULTILABEL_OUTPUTS,
            "regressor": (REGRESSOR_OUTPUT,), "tagger": TAGGER_OUTPUTS}[kind]


def _write(tmp: Path, core, preprocess_handle, heads, inputs: InputSettings, check_texts, log, encoder_handle,
           info: dict) -> None:
    server = MultitaskServer(preprocess_handle, core, heads, inputs)
    server.core, facts = choose_serving_core(core, encoder_handle, server.single, check_texts,
                                             [served_head(name, head) for name, head in heads.items()], log)
    info.update(facts)
    signatures = {"serving_default": server.serve.get_concrete_function(),
                  **{f"serving_{name}": server.head_signature(name) for name in heads}}
    calls = {name: {"text": check_texts} for name in signatures}
    save_server(tmp, server, signatures, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)
    expected = {k: v.numpy() for k, v in server.serve(tf.constant(check_texts)).items()}
    for key, want in expected.items():
        name = next(n for n in heads if key.startswith(f"{n}_"))
        for signature, field in (("serving_default", key), (f"serving_{name}", key[len(name) + 1:])):
            value = got[signature][field]
            if want.dtype.kind == "f":
                same = np.shape(value) == want.shape and np.abs(np.asarray(value, np.float32) - want).max() <= 1e-4
            elif want.dtype.kind in "OSU":
                same = value == np.char.decode(want.astype(bytes), "utf-8").tolist()
            else:
                same = value == want.tolist()
            if not same:
                raise RuntimeError(f"exported model's {signature} {field} differs from the trained model (got "
                                   f"{value}, expected {want.tolist()})")
