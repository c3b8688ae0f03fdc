"""Knowledge distillation (`--teacher EXPORT`): a student learns a trained classifier's answers as well as the labels.

The teacher is any classifier export (tfbert.export.classifier, or a model base directory: its latest version). It
scores the training and validation texts once, before training, through its own serving signature, so a teacher
trained on another encoder or another machine teaches the same way. Its probabilities p (softmax(z / T_cal) when
it was calibrated) give the soft targets softmax(log p / tau) = softmax(z / (T_cal * tau)): --distill-temperature
tau softens them as Hinton et al. (2015) do. The student's loss per text:

    alpha * tau**2 * cross-entropy(soft targets, softmax(student logits / tau))
      + (1 - alpha) * w[label] * cross-entropy(label, student logits)

with alpha = --distill-weight (tau**2 keeps the soft term's gradient scale independent of tau) and w the class
weights (--class-weights), applied to the label term. The student is an ordinary classifier: it exports, serves
and calibrates like any other; its metadata names the teacher.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfbert.config import ConfigError

__all__ = ["Teacher", "soft_targets", "targets", "distillation_loss", "on_labels", "check_teacher"]

TEACHER_TASKS = ("classify", "sentiment")


class Teacher:
    """A loaded classifier export that teaches: its version directory, labels and metadata."""

    def __init__(self, path: str):
        from tfbert.serving import load, read_metadata, resolve_model_dir
        try:
            self.path = resolve_model_dir(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"--teacher {path}: {e}") from None
        self.metadata = read_metadata(self.path)
        task = self.metadata.get("task")
        if self.metadata.get("serving", "classifier") != "classifier" or task not in TEACHER_TASKS:
            raise ConfigError(f"--teacher {path}: a {task or 'unknown'} export; a teacher is a classifier export "
                              f"(--task {' or '.join(TEACHER_TASKS)})")
        self.client = load(self.path, self.metadata)
        self.labels = list(self.client.labels)

    def facts(self) -> dict:
        """What the student's metadata records about its teacher."""
        test = self.metadata.get("test_metrics") or {}
        encoder = self.metadata.get("encoder")
        return {"export": str(self.path), "task": self.metadata.get("task"), "encoder": encoder,
                **({"test_macro_f1": test["macro_f1"]} if "macro_f1" in test else {})}

    def probabilities(self, frame, labels: list[str], has_pairs: bool) -> np.ndarray:
        """The teacher's probabilities for the rows of `frame` (text[, text_b]), columns in `labels` order."""
        missing = [x for x in labels if x not in self.labels]
        if missing or len(labels) != len(self.labels):
            raise ConfigError(f"--teacher {self.path}: its labels ({', '.join(self.labels)}) are not the data's "
                              f"({', '.join(labels)})")
        if has_pairs and not self.client.has_pairs:
            raise ConfigError(f"--teacher {self.path} reads single texts; the data has sentence pairs")
        texts_b = frame["text_b"].tolist() if has_pairs else None
        probs, _, _ = self.client.predict(frame["text"].tolist(), texts_b)
        return probs[:, [self.labels.index(x) for x in labels]]


def soft_targets(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / temperature), row by row: the teacher's answers softened (temperature > 1) or sharpened."""
    logits = np.log(np.clip(probabilities.astype(np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def targets(label_ids: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The student's training targets float32 [n, 1 + classes]: the label id, then the soft targets."""
    return np.concatenate([np.asarray(label_ids, np.float32)[:, None], soft], axis=1)


def distillation_loss(temperature: float, weight: float, class_weights: dict | None = None):
    """Keras loss of (targets [batch, 1 + classes] as `targets` builds them, student logits [batch, classes])."""
    import tensorflow as tf
    import tf_keras as keras

    w = None
    if class_weights:
        w = tf.constant([class_weights[i] for i in range(len(class_weights))], tf.float32)

    def distillation(y_true, logits):
        y_true, logits = tf.cast(y_true, tf.float32), tf.cast(logits, tf.float32)
        label, soft = tf.cast(y_true[:, 0], tf.int32), y_true[:, 1:]
        soft_term = keras.losses.categorical_crossentropy(soft, logits / temperature, from_logits=True)
        hard_term = tf.nn.sparse_softmax_cross_entropy_with_logits(label, logits)
        if w is not None:
            hard_term *= tf.gather(w, label)
        return weight * temperature ** 2 * soft_term + (1 - weight) * hard_term

    return distillation


def on_labels(metric):
    """A Keras metric of (label ids, logits) fed the label column of the distillation targets, under its own name
    (so that val_macro_f1 stays the monitored key)."""
    import tensorflow as tf
    import tf_keras as keras

    class LabelColumn(keras.metrics.Metric):
        def __init__(self, inner):
            super().__init__(name=inner.name)
            self.inner = inner

        def update_state(self, y_true, y_pred, sample_weight=None):
            return self.inner.update_state(tf.cast(y_true[:, 0], tf.int64), y_pred, sample_weight)

        def result(self):
            return self.inner.result()

        def reset_state(self):
            self.inner.reset_state()

    if isinstance(metric, str):  # "accuracy", of integer labels
        metric = keras.metrics.SparseCategoricalAccuracy(name=metric)
    return LabelColumn(metric)


def check_teacher(path: str | None) -> None:
    """Before any data or TensorFlow: the teacher's folder exists (its export is read when the data is)."""
    if path is not None and not Path(path).exists():
        raise ConfigError(f"--teacher {path}: no such export or model directory")
