"""Keras metrics compiled into a model, so that validation scores come from Keras' own evaluation pass (summed
across replicas under tf.distribute) instead of an extra prediction pass per epoch."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


class MacroF1Score(keras.metrics.F1Score):
    """Macro-F1 of integer labels against logits (or probabilities), as sklearn's f1_score(average="macro").

    keras.metrics.F1Score wants one-hot labels and averages over every class; this one takes the sparse labels
    and the logits the classifier trains on, and averages over the classes present in the labels or the
    predictions, as sklearn does (a class absent from both has no F1: counting it as 0 would lower the score).
    Macro rather than accuracy: on imbalanced labels a majority-class model scores a high accuracy but a low
    macro-F1."""

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs):
        kwargs.pop("average", None), kwargs.pop("threshold", None)
        super().__init__(average=None, threshold=0.5, name=name, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [-1]), self.num_classes)
        y_pred = tf.one_hot(tf.argmax(y_pred, axis=-1, output_type=tf.int32), self.num_classes)
        return super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        per_class = super().result()
        present = (self.true_positives + self.false_positives + self.false_negatives) > 0
        return tf.math.divide_no_nan(tf.reduce_sum(tf.where(present, per_class, 0.0)),
                                     tf.reduce_sum(tf.cast(present, per_class.dtype)))

    def get_config(self):
        config = super().get_config()
        for key in ("average", "threshold"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes}
