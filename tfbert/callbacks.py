"""The training callbacks: the stock Keras ones the loop uses, and the ones they do not cover."""
from __future__ import annotations

import time
from pathlib import Path

import tf_keras as keras


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


def training_callbacks(run_dir: Path, metric: keras.callbacks.Callback | None, monitor: str, *, patience: int,
                       steps_per_epoch: int, batch_size: int, verbose: int, log=print, state_dir: Path | None = None,
                       hold_epochs: int = 0):
    """The callbacks every task trains with, and the path of its best weights.

    `metric`, a callback that writes `monitor` into the epoch logs (None when `monitor` is a compiled metric),
    comes first: the checkpoint and early stopping read it. `state_dir` (default `run_dir`) holds the best weights,
    the resume backup and the TensorBoard logs: in a multi-worker cluster, the chief's run folder for every worker,
    since these Keras callbacks write there on the chief only (other workers write temp copies they delete) and
    every worker restores from the chief's backup.
    """
    state_dir = state_dir or run_dir
    best = state_dir / "checkpoints" / "best"
    callbacks = [metric] if metric is not None else []
    callbacks += [
        keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, mode="max", save_best_only=True,
                                        save_weights_only=True, verbose=0),
        # hold_epochs: under --unfreeze, no stopping before every part trains (the score may dip while they thaw)
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience, start_from_epoch=hold_epochs),
        keras.callbacks.BackupAndRestore(str(state_dir / "backup")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(state_dir / "logs"), update_freq=50, profile_batch=0),
    ]
    if verbose == 2:
        callbacks.append(ProgressLog(steps_per_epoch, batch_size, every=max(10, steps_per_epoch // 10), log=log))
    return callbacks, best
