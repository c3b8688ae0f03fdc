"""Keras callbacks that the stock ones do not cover."""
from __future__ import annotations

import time

import numpy as np
import tf_keras as keras
from sklearn.metrics import f1_score


class MacroF1(keras.callbacks.Callback):
    """Adds `val_macro_f1` to the epoch logs, so EarlyStopping and ModelCheckpoint can monitor it.

    Macro-F1 rather than accuracy: on imbalanced labels a model that predicts the majority class scores a
    high accuracy but a low macro-F1.
    """

    def __init__(self, dataset, labels: np.ndarray):
        super().__init__()
        self.dataset, self.labels = dataset, labels

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.argmax(self.model.predict(self.dataset, verbose=0), axis=-1)
        score = f1_score(self.labels, predicted, average="macro")
        if logs is not None:
            logs["val_macro_f1"] = float(score)


class ProgressLog(keras.callbacks.Callback):
    """A progress line every `every` steps with loss, throughput and time left in the epoch.

    For logs and CI, where Keras's progress bar (verbose=1) is noise and verbose=2 is silent for a whole epoch.
    """

    def __init__(self, steps_per_epoch: int, batch_size: int, every: int = 50, log=print):
        super().__init__()
        self.steps, self.batch_size, self.every, self.log = steps_per_epoch, batch_size, every, log

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start = epoch, time.time()

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        if done % self.every and done != self.steps:
            return
        elapsed = time.time() - self.start
        rate = done * self.batch_size / max(elapsed, 1e-9)
        left = (self.steps - done) * elapsed / done
        self.log(f"epoch {self.epoch + 1} step {done}/{self.steps} loss {logs.get('loss', float('nan')):.4f} "
                 f"{rate:.1f} examples/s, {left:.0f}s left in epoch")
