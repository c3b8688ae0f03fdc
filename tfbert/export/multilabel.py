"""Export a trained multi-label classifier as a SavedModel that serves raw strings (TF Serving layout, verified).

<output>/<name>/<version>/ holds saved_model.pb, variables/, assets/labels.txt and assets/thresholds.txt. One
signature:
  serving_default(text: string[batch]) ->
    probabilities  float32 [batch, labels]      sigmoid per label
    labels         string  [batch, max_labels]  the predicted set (probability >= the label's threshold), in label
                                                order, padded with "" to the batch's largest set (0 wide if none)
    num_labels     int32   [batch]
The thresholds were tuned on the validation split for F1 (tfbert.metrics.multilabel.tune_thresholds); they are in
the graph, in assets/thresholds.txt and in assets.extra/tfbert.json. The request runs in length-sorted chunks, as
the classifier's does (ClassifierServer._logits, inherited), with texts longer than the window cut as in
training (--long-texts, in the metadata as "long_texts"; windows: logits pooled per text before the sigmoid).

For an encoder converted by tfbert the numeric part served is the forward-only inference graph, once its sigmoid
probabilities match the trained core's on the check texts (tfbert.export.serving_core); otherwise the trained core.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfbert.data.inputs import InputSettings
from tfbert.export.base import CHECK_TEXTS
from tfbert.export.classifier import LABELS_FILE, ClassifierServer
from tfbert.export.publish import asset_source, publish_next_version, save_server, verify_in_fresh_process
from tfbert.export.serving_core import ServedHead, choose_serving_core
from tfbert.export.tflite import export_tflite, refuse_tflite_cut

THRESHOLDS_FILE = "thresholds.txt"
OUTPUTS = ("probabilities", "labels", "num_labels")


class MultilabelServer(ClassifierServer):
    """Raw strings -> preprocess model -> trained core (chunked, as the classifier) -> sigmoid, thresholded sets."""

    def __init__(self, preprocess_handle: str, core, labels: list[str], thresholds, inputs: InputSettings,
                 labels_file: Path, thresholds_file: Path):
        super().__init__(preprocess_handle, core, labels, inputs, labels_file)
        self.thresholds_asset = tf.saved_model.Asset(str(thresholds_file))
        self._thresholds = np.asarray(thresholds, np.float32)
        del self.temperature  # the classifier's softmax temperature: sigmoid scores here are not scaled

    def _outputs(self, logits):
        return multilabel_outputs(logits, self._labels, self._thresholds)


def multilabel_outputs(logits, labels: list[str], thresholds) -> dict:
    """Sigmoid scores and the thresholded label sets (also a multitask export's multi-label heads)."""
    probabilities, chosen = multilabel_choice(logits, thresholds)
    where = tf.where(chosen)  # [k, 2] (row, label), row-major: each row's labels in label order
    batch = tf.shape(probabilities, out_type=tf.int64)[0]
    names = tf.RaggedTensor.from_value_rowids(tf.gather(tf.constant(labels), where[:, 1]), where[:, 0], nrows=batch)
    return {"probabilities": probabilities, "labels": names.to_tensor(""),
            "num_labels": tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1)}


def multilabel_choice(logits, thresholds):
    """Sigmoid scores and, per label, whether it reaches its threshold (also the .tflite's: tfbert.export.tflite)."""
    probabilities = tf.sigmoid(logits)
    return probabilities, probabilities >= tf.constant(np.asarray(thresholds, np.float32))[None, :]


class MultilabelAnswers:
    """The .tflite's head (tfbert.export.tflite.LiteModel): logits -> sigmoid probabilities, chosen (1 where a
    label's probability reaches its threshold), num_labels. The SavedModel's label names as strings need ragged ops
    TFLite has no kernels for: `chosen` is in label order."""
    kind, compared = "multilabel", "probabilities"

    def __init__(self, thresholds):
        self.thresholds = np.asarray(thresholds, np.float32)

    def __call__(self, logits):
        probabilities, chosen = multilabel_choice(tf.cast(logits, tf.float32), self.thresholds)
        chosen = tf.cast(chosen, tf.int32)
        return {"probabilities": probabilities, "chosen": chosen, "num_labels": tf.reduce_sum(chosen, axis=1)}

    def decisions(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= self.thresholds[None, :]


def export_multilabel(core, preprocess_handle: str, labels: list[str], thresholds, base: str | Path, *,
                      inputs: InputSettings = InputSettings(), encoder_handle: str | None = None,
                      pooling: str = "pooled", check_texts=(), info: dict | None = None, metadata: dict | None = None,
                      tflite: dict | None = None, log=print) -> Path:
    """Writes the next version under `base` (= <output-dir>/<model-name>) and returns its path. `metadata` goes
    into assets.extra/tfbert.json with the label names and thresholds; `info` (a dict), if given, receives which
    graph is served (tfbert.export.serving_core, with the core's `encoder_handle` and `pooling`). `tflite` (a dict),
    if given: also write assets.extra/model.tflite (tfbert.export.tflite; --long-texts truncate only); the dict
    receives its facts, which the metadata's "tflite" holds."""
    thresholds = [float(t) for t in np.asarray(thresholds, np.float32)]
    if len(thresholds) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(thresholds)} thresholds")
    refuse_tflite_cut(tflite, inputs)
    texts = CHECK_TEXTS + list(check_texts)
    info = {} if info is None else info
    served = ServedHead("logits", pooling, "multilabel")
    return publish_next_version(
        base, lambda tmp: _write(tmp, core, preprocess_handle, labels, thresholds, inputs, texts, log,
                                 encoder_handle, served, info, tflite),
        {"task": "multilabel", **(metadata or {}), "serving": "multilabel", "labels": list(labels),
         "thresholds": thresholds, "signatures": ["serving_default"], "serving_graph": info,
         **inputs.metadata(), **({"tflite": tflite} if tflite is not None else {})}, log)


def _write(tmp: Path, core, preprocess_handle, labels, thresholds, inputs: InputSettings, check_texts, log,
           encoder_handle, served: ServedHead, info: dict, lite: dict | None) -> None:
    server = MultilabelServer(preprocess_handle, core, labels, thresholds, inputs,
                              asset_source(tmp, LABELS_FILE, labels),
                              asset_source(tmp, THRESHOLDS_FILE, [repr(t) for t in thresholds]))
    server.core, facts = choose_serving_core(core, encoder_handle, server.single, check_texts, [served], log)
    info.update(facts)
    calls = {"serving_default": {"text": check_texts}}
    save_server(tmp, server, {"serving_default": server.serve.get_concrete_function()}, calls)

    log("checking the export in a fresh process (tensorflow + tensorflow_text only)")
    got = verify_in_fresh_process(tmp, calls)["serving_default"]
    expected = server.serve(tf.constant(check_texts))
    probs = np.array(got["probabilities"], np.float32)
    want = expected["probabilities"].numpy()
    chosen = probs >= np.asarray(thresholds, np.float32)[None, :]
    sets_ok = got["num_labels"] == chosen.sum(1).tolist() and all(
        [x for x in row if x] == [labels[j] for j in np.flatnonzero(c)] for row, c in zip(got["labels"], chosen))
    if probs.shape != want.shape or np.abs(probs - want).max() > 1e-4 or not sets_ok:
        raise RuntimeError(f"exported model answers differ from the trained model (got {got}, expected "
                           f"{want.tolist()})")
    if lite is not None:
        lite.update(export_tflite(tmp, server, core, encoder_handle, served.reads, inputs.max_seq_length,
                                  MultilabelAnswers(thresholds), check_texts, log))
