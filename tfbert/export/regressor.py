"""Export a trained regressor as a SavedModel that serves raw strings (TF Serving layout, atomic, verified).

Signatures:
  serving_default(text: string[batch]) -> score float32[batch]     in the label's own units
  serving_pairs(text, text_b)          -> the same, for models trained on sentence pairs
The core outputs standardised scores (the model trains on (label - mean) / std of the train split); the server
maps them back with the mean and std held as constants in the graph, also written in the metadata ("target").
For an encoder converted by tfbert the numeric part served is the forward-only inference graph, once its
standardised scores match the trained core's on the check texts (tfbert.export.serving_core). Long texts are cut in the graph as in training (--long-texts, in the
metadata as "long_texts"); under windows a text's score is the average of its windows' (TextPipeline.per_text). Written to a hidden temp dir, loaded back in a fresh process that imports
only tensorflow and tensorflow_text and compared with the in-process server, then published as the next version.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import TextPipeline
from tfbert.export.base import CHECK_TEXTS, SERVE_CHUNK, sorted_chunks, text_batches
from tfbert.export.publish import publish_next_version, save_server, text_signatures, verify_in_fresh_process
from tfbert.export.serving_core import ServedHead, choose_serving_core
from tfbert.export.tflite import export_tflite, refuse_tflite_cut

_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_B = tf.TensorSpec([None], tf.string, name="text_b")
OUTPUT = "score"


class RegressorServer(tf.Module):
    """Raw strings -> preprocess model -> trained core (one standardised value per text) -> score in label units."""

    def __init__(self, preprocess_handle: str, core, mean: float, std: float, inputs: InputSettings,
                 chunk: int = SERVE_CHUNK):
        super().__init__()
        self.chunk = chunk  # 0: the whole request as one batch
        self.preprocess = hub.load(preprocess_handle)
        self.core = core
        self.mean, self.std = float(mean), float(std)
        self.single, self.pairs = inputs.pipeline(self.preprocess), inputs.pipeline(self.preprocess, has_pairs=True)

    def _scores(self, pipeline: TextPipeline, segments):
        standardised = pipeline.per_text(lambda s: sorted_chunks(self.core, pipeline, s, self.chunk, 1),
                                         segments)[:, 0]
        return regressor_outputs(standardised, self.mean, self.std)

    @tf.function(input_signature=[_TEXT])
    def serve(self, text):
        text = text_batches(text)
        return self._scores(self.single, self.single.segments(text))

    @tf.function(input_signature=[_TEXT, _TEXT_B])
    def serve_pairs(self, text, text_b):
        text, text_b = text_batches(text, text_b)
        return self._scores(self.pairs, self.pairs.segments(text, text_b))


def regressor_outputs(standardised, mean: float, std: float) -> dict:
    """Standardised values [batch] -> scores in label units (also a multitask export's regression heads)."""
    return {OUTPUT: standardised * tf.constant(std, tf.float32) + tf.constant(mean, tf.float32)}


class RegressorAnswers:
    """The .tflite's head (tfbert.export.tflite.LiteModel): standardised logits [batch, 1] -> score [batch] in the
    label's units."""
    kind, compared = "regressor", "score"

    def __init__(self, mean: float, std: float):
        self.mean, self.std = float(mean), float(std)

    def __call__(self, logits):
        return regressor_outputs(tf.cast(logits, tf.float32)[:, 0], self.mean, self.std)

    decisions = None


def export_regressor(core, preprocess_handle: str, base: str | Path, *, mean: float, std: float,
                     inputs: InputSettings = InputSettings(), has_pairs: bool = False,
                     encoder_handle: str | None = None, pooling: str = "pooled", check_texts=(),
                     info: dict | None = None, metadata: dict | None = None, tflite: dict | None = None,
                     log=print) -> Path:
    """Writes the next version under `base` (= <output-dir>/<model-name>) and returns its path. `core`: encoder
    inputs -> [batch, 1] standardised scores; `mean`, `std`: the train labels', to map them back. `info` (a dict),
    if given, receives which graph is served (tfbert.export.serving_core, with `encoder_handle` and `pooling`).
    `tflite` (a dict), if given: also write assets.extra/model.tflite (tfbert.export.tflite; single texts cut by
    truncation only); the dict receives its facts, which the metadata's "tflite" holds."""
    if inputs.long_texts == "windows" and has_pairs:
        raise ValueError("long_texts windows reads single texts, not sentence pairs")
    refuse_tflite_cut(tflite, inputs, has_pairs)
    signatures = ["serving_default"] + (["serving_pairs"] if has_pairs else [])
    info = {} if info is None else info
    served, texts = ServedHead("logits", pooling, "regressor"), CHECK_TEXTS + list(check_texts)
    return publish_next_version(
        base, lambda tmp: _write(tmp, core, preprocess_handle, mean, std, inputs, has_pairs, log, encoder_handle,
                                 served, texts, info, tflite),
        {"task": "regression", **(metadata or {}), "serving": "regressor", "labels": [OUTPUT],
         "signatures": signatures, "target": {"mean": float(mean), "std": float(std)}, **inputs.metadata(),
         "serving_graph": info, **({"tflite": tflite} if tflite is not None else {})}, log)


def _write(tmp: Path, core, preprocess_handle, mean, std, inputs: InputSettings, has_pairs, log, encoder_handle,
           served: ServedHead, check_texts: list[str], info: dict, lite: dict | None) -> None:
    server = RegressorServer(preprocess_handle, core, mean, std, inputs)
    server.core, facts = choose_serving_core(core, encoder_handle, server.pairs if has_pairs else server.single,
                                             check_texts, [served], log)
    info.update(facts)
    signatures, calls = text_signatures(server, has_pairs, CHECK_TEXTS)
    save_server(tmp, server, signatures, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)
    for name, request in calls.items():
        fn = server.serve if name == "serving_default" else server.serve_pairs
        expected = fn(*(tf.constant(v) for v in request.values()))[OUTPUT].numpy()
        scores = np.array(got[name][OUTPUT], dtype=np.float64)
        if scores.shape != (len(CHECK_TEXTS),) or not np.isfinite(scores).all() \
                or np.abs(scores - expected).max() > 1e-4 * max(1.0, abs(std)):
            raise RuntimeError(f"exported model answers differ from the trained model in {name} (got {scores}, "
                               f"expected {expected})")
    if lite is not None:
        lite.update(export_tflite(tmp, server, core, encoder_handle, served.reads, inputs.max_seq_length,
                                  RegressorAnswers(mean, std), check_texts, log))
