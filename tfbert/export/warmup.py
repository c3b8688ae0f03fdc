"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests` in every version folder.

TF Serving runs the first request to a freshly loaded model through graph optimisation and kernel set-up, which
makes it seconds slower than the next ones. A model that carries warm-up records (a TFRecord file of PredictionLog
protos) gets them replayed when it loads, before the server routes traffic to it (tensorflow/serving#385;
tensorflow.org/tfx/serving/saved_model_warmup). The records are the texts the export is checked with, built with the
`tensorflow-serving-api` package's protos (it pins the same TensorFlow minor version as tfbert).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

__all__ = ["WARMUP_FILE", "warmup_requests", "write_warmup_requests", "read_warmup_requests"]

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def warmup_requests(calls: dict[str, dict[str, list[str]]], model_name: str = "") -> list:
    """PredictionLogs for `calls` (signature -> input name -> texts): per signature, the whole batch and its first
    row alone, so that both a batch and the common single-text request are warm."""
    logs = []
    for signature, inputs in calls.items():
        for rows in (slice(None), slice(0, 1)):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, texts in inputs.items():
                values = np.array([t.encode("utf-8") for t in texts[rows]], dtype=object)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(directory: Path, calls: dict[str, dict[str, list[str]]], model_name: str = "") -> Path:
    """Writes the warm-up records of `calls` into the SavedModel `directory`; returns the file's path."""
    path = Path(directory) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(calls, model_name):
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path) -> list:
    """The PredictionLogs of a warm-up file (a SavedModel directory or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / WARMUP_FILE
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]
