"""Export a trained classifier as a SavedModel that serves raw strings (TF Serving layout, atomic, verified).

<output>/<name>/<version>/ holds saved_model.pb, variables/ and assets/labels.txt. Signatures:
  serving_default(text: string[batch]) -> probabilities float32[batch, classes], label string[batch], label_id int64[batch]
  serving_pairs(text, text_b)          -> the same, for models trained on sentence pairs
A temperature T (fitted by --calibrate) and a decision threshold (--tune-threshold, two labels) are variables of
the exported module, applied in the graph: probabilities = softmax(logits / T); with a threshold, label_id is 1
exactly when probabilities[:, 1] >= threshold (else the argmax).
Texts longer than the window are cut in the graph as in training: the server's TextPipelines come from the run's
InputSettings (tfbert.data.inputs), so they carry its --long-texts (truncate or head-tail; tfbert.data.long_texts),
recorded in the metadata as "long_texts". Under windows (single texts) each text's windows become rows of the
length-sorted chunks and their logits are pooled back per text (TextPipeline.per_text, mean), in request order;
the metadata's "windows" holds the window size, stride, --max-windows cap and pooling.
The version is the next free integer; the model is written to a hidden temp dir beside it, loaded back in a
fresh process that imports only tensorflow and tensorflow_text, and only then renamed into place.
For an encoder converted by tfbert, the numeric part served is the forward-only inference graph, once it matches
the trained core on the check texts (tfbert.export.serving_core); otherwise the trained core itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import TextPipeline
from tfbert.export.base import CHECK_TEXTS, SERVE_CHUNK, sorted_chunks, text_batches
from tfbert.export.publish import (
    asset_source,
    publish_next_version,
    save_server,
    text_signatures,
    verify_in_fresh_process,
)
from tfbert.export.serving_core import ServedHead, choose_serving_core
from tfbert.export.tflite import export_tflite, refuse_tflite_cut

LABELS_FILE = "labels.txt"
_TEXT = tf.TensorSpec([None], tf.string, name="text")
_TEXT_B = tf.TensorSpec([None], tf.string, name="text_b")
class ClassifierServer(tf.Module):
    """Raw strings -> preprocess model -> trained classifier core -> softmax, label names."""

    def __init__(self, preprocess_handle: str, core, labels: list[str], inputs: InputSettings, labels_file: Path,
                 chunk: int = SERVE_CHUNK, temperature: float = 1.0, threshold: float | None = None):
        super().__init__()
        check_decision(labels, temperature, threshold)
        # Variables, not constants: a loaded export shows them (model.temperature, model.threshold).
        self.temperature = tf.Variable(float(temperature), trainable=False, name="temperature")
        self.threshold = None if threshold is None else tf.Variable(float(threshold), trainable=False,
                                                                    name="threshold")
        self.chunk = chunk  # 0: the whole request as one batch
        self.preprocess = hub.load(preprocess_handle)
        self.core = core
        self.labels_asset = tf.saved_model.Asset(str(labels_file))
        self._labels = list(labels)
        self.single, self.pairs = inputs.pipeline(self.preprocess), inputs.pipeline(self.preprocess, has_pairs=True)

    def _logits(self, pipeline: TextPipeline, segments):
        return pipeline.per_text(lambda s: sorted_chunks(self.core, pipeline, s, self.chunk, len(self._labels)),
                                 segments)

    def _outputs(self, logits):
        return classifier_outputs(logits, self._labels, self.temperature, self.threshold)

    @tf.function(input_signature=[_TEXT])
    def serve(self, text):
        text = text_batches(text)
        return self._outputs(self._logits(self.single, self.single.segments(text)))

    @tf.function(input_signature=[_TEXT, _TEXT_B])
    def serve_pairs(self, text, text_b):
        text, text_b = text_batches(text, text_b)
        return self._outputs(self._logits(self.pairs, self.pairs.segments(text, text_b)))


def classifier_outputs(logits, labels: list[str], temperature, threshold=None) -> dict:
    """The classifier's answers from its logits (also a multitask export's classifier heads)."""
    probabilities, label_id = classifier_decision(logits, temperature, threshold)
    return {"probabilities": probabilities, "label_id": label_id, "label": tf.gather(tf.constant(labels), label_id)}


def classifier_decision(logits, temperature, threshold=None):
    """softmax(logits / T) and the label id (also the .tflite's: tfbert.export.tflite)."""
    probabilities = tf.nn.softmax(logits / temperature, axis=-1)
    if threshold is None:
        label_id = tf.argmax(probabilities, axis=-1)
    else:  # two labels: the second one exactly when its probability reaches the threshold
        label_id = tf.cast(probabilities[:, 1] >= threshold, tf.int64)
    return probabilities, label_id


class ClassifierAnswers:
    """The .tflite's head (tfbert.export.tflite.LiteModel): logits -> softmax(logits / T) and the label id (the
    argmax, or the tuned threshold on the second label)."""
    kind, compared = "classifier", "probabilities"

    def __init__(self, temperature: float = 1.0, threshold: float | None = None):
        self.temperature, self.threshold = float(temperature), threshold

    def __call__(self, logits):
        probabilities, label_id = classifier_decision(tf.cast(logits, tf.float32), self.temperature, self.threshold)
        return {"probabilities": probabilities, "label_id": label_id}

    def decisions(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities.argmax(-1) if self.threshold is None else probabilities[:, 1] >= self.threshold


def check_decision(labels: list[str], temperature: float, threshold: float | None) -> None:
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, not {temperature!r}")
    if threshold is not None:
        if len(labels) != 2:
            raise ValueError(f"a decision threshold needs two labels, not {len(labels)} ({', '.join(labels)})")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), not {threshold!r}")


def export_classifier(core, preprocess_handle: str, labels: list[str], base: str | Path, *,
                      inputs: InputSettings = InputSettings(), has_pairs: bool = False,
                      encoder_handle: str | None = None, pooling: str = "pooled", check_texts=(), info=None,
                      metadata: dict | None = None, temperature: float = 1.0, threshold: float | None = None,
                      tflite: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` (= <output-dir>/<model-name>) and returns its path.

    encoder_handle: the encoder the core was built on; for one converted by tfbert the export serves the
    forward-only inference graph with the core's `pooling` (build_classifier's), checked against the core on
    CHECK_TEXTS plus `check_texts`. `info` (a dict),
    if given, receives which graph was exported and how closely it matched. `metadata` goes into the export's
    assets.extra/tfbert.json (with the label names, signatures and the graph chosen). `temperature` and
    `threshold` (two labels only; None: the argmax) are applied in the graph and written to the metadata, as are
    the `inputs` (the window, and which wordpieces of a text longer than it are read: tfbert.data.inputs).
    `tflite` (a dict), if given: also write assets.extra/model.tflite (tfbert.export.tflite; single texts cut by
    truncation only); the dict receives its facts, which the metadata's "tflite" holds.
    """
    check_decision(labels, temperature, threshold)
    if inputs.long_texts == "windows" and has_pairs:
        raise ValueError("long_texts windows reads single texts, not sentence pairs")
    refuse_tflite_cut(tflite, inputs, has_pairs)
    info = {} if info is None else info
    texts = CHECK_TEXTS + list(check_texts)
    return publish_next_version(
        base, lambda tmp: _write(tmp, core, preprocess_handle, labels, inputs, has_pairs, log, encoder_handle, texts,
                                 info, temperature, threshold, pooling, tflite),
        {"task": "classify", **(metadata or {}), "serving": "classifier", "labels": list(labels), "pooling": pooling,
         "temperature": float(temperature), "threshold": None if threshold is None else float(threshold),
         **inputs.metadata(), "signatures": ["serving_default"] + (["serving_pairs"] if has_pairs else []), "serving_graph": info,
         **({"tflite": tflite} if tflite is not None else {})}, log)


def _write(tmp: Path, core, preprocess_handle, labels, inputs: InputSettings, has_pairs, log, encoder_handle,
           check_texts: list[str], info: dict, temperature: float, threshold: float | None, pooling: str,
           lite: dict | None) -> None:
    server = ClassifierServer(preprocess_handle, core, labels, inputs, asset_source(tmp, LABELS_FILE, labels),
                              temperature=temperature, threshold=threshold)
    pipeline = server.pairs if has_pairs else server.single
    server.core, facts = choose_serving_core(core, encoder_handle, pipeline, check_texts,
                                             [ServedHead("logits", pooling, "classifier")], log)
    info.update(facts)
    signatures, calls = text_signatures(server, has_pairs, CHECK_TEXTS)
    save_server(tmp, server, signatures, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)
    expected = server.serve(tf.constant(CHECK_TEXTS))["probabilities"].numpy()
    probs = np.array(got["serving_default"]["probabilities"])
    if probs.shape != (len(CHECK_TEXTS), len(labels)) or not np.allclose(probs.sum(-1), 1, atol=1e-4) \
            or np.abs(probs - expected).max() > 1e-4 or not set(got["serving_default"]["label"]) <= set(labels):
        raise RuntimeError(f"exported model answers differ from the trained model (got {probs}, expected {expected})")
    if lite is not None:
        answers = ClassifierAnswers(float(server.temperature.numpy()),
                                    None if server.threshold is None else float(server.threshold.numpy()))
        lite.update(export_tflite(tmp, server, core, encoder_handle, pooling, inputs.max_seq_length, answers,
                                  check_texts, log))
