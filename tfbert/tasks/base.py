"""The Task interface: what a task supplies to the one training loop (tfbert/fit.py).

The loop owns everything tasks share (seeding, run folder and resume, epochs and min-steps, strategy scope,
optimizer and schedule, callbacks, best weights, history and plots, summary, publishing). A task owns what
differs: its defaults, its data and how it is validated, its tf.data datasets, its head, loss and metrics, the
validation metric early stopping watches, its test report and its export. Tasks never import the loop or the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfbert.tasks.catalog import TaskSpec


@dataclass
class Datasets:
    """What a task hands the loop for training: batched (inputs, targets) datasets and the exact batch count."""
    train: Any  # tf.data.Dataset, reshuffled each epoch
    valid: Any  # tf.data.Dataset, in order
    steps_per_epoch: int  # exact: the schedule is planned from it
    fit_kwargs: dict = field(default_factory=dict)  # extra model.fit arguments (e.g. class_weight)
    truncation: dict | None = None  # how much of each split the window cuts (the loop puts it in metrics.json)
    epochs: int | None = None  # the task's own epoch count (pre-training's --max-steps); else --epochs/--min-steps


class Task(TaskSpec):
    """Base class of the registered tasks' implementations (tfbert/tasks/__init__.py): a task's spec
    (tfbert.tasks.catalog: name, defaults, options, setting checks, data) plus what needs TensorFlow, the methods
    below. The loop makes one task object per run, so a task may keep what it computed for the run (e.g. aligned
    data)."""

    def check_encoder(self, preprocess, handles) -> None:
        """Refuse an encoder the task cannot export with, before training (default: any)."""

    def datasets(self, data, inputs, config, log=print) -> Datasets:
        """Training and validation batches; `inputs` (tfbert.data.inputs.RunInputs, the run's one input side) makes
        the token pipelines and holds the preprocess model and the training augmentation."""
        raise NotImplementedError

    def build_model(self, encoder_handle: str, data, config):
        """The Keras functional model: encoder inputs dict -> task outputs."""
        raise NotImplementedError

    def compile_args(self, data, config) -> dict:
        """`loss` and `metrics` for model.compile (the loop supplies the optimizer)."""
        raise NotImplementedError

    def validation_callback(self, data, datasets: Datasets, config):
        """A Keras callback that writes `monitor` into the epoch logs, for a metric Keras cannot compile (e.g.
        entity F1 over decoded spans); None when `monitor` is a compiled metric's val_ value (the default)."""
        return None

    def constant_score(self, data) -> tuple[str, float] | None:
        """(what, value): the monitored metric of the best answer that ignores the text (the majority class, no
        entities) on the validation split; the loop warns about a run whose best validation value stays within
        tfbert.fit.COLLAPSE_MARGIN of it. None: no such answer is defined for the task's metric (the default)."""
        return None

    def window_outputs(self, model, data, inputs, config):
        """--window-pooling attention: (the model's per-window outputs on the validation texts [n_windows, k] as
        the export pools them, each window's text, the number of texts, loss(pooled [texts, k]) -> tf scalar mean)
        to fit the pooling on (tfbert.data.windows.fit_attention). None: the task pools no windows."""
        return None

    def after_training(self, model, data, inputs, config, log=print) -> dict:
        """Runs once the best weights are loaded: what the task fits on the validation split after training
        (classification: a temperature, a decision threshold; multi-label: per-label thresholds; QA: the no-answer
        threshold). Returns those values (JSON-able): the loop hands them to `export`, which serves them, and puts
        them in metrics.json. Default: nothing fitted."""
        return {}

    def test_metrics(self, directory: Path, written: dict, data) -> tuple[dict, Any]:
        """The test split scored on the export written in `directory` (its metadata `written`), before it is
        published: through its client (tfbert.serving.load) and `score_export`."""
        from tfbert.serving import load
        return self.score_export(load(directory, written), data)

    def score_export(self, client, data) -> tuple[dict, Any]:
        """The test split scored on the written export through its client (tfbert.serving), the way
        `python -m tfbert.evaluate` scores a file: (test metrics, JSON-able; the predictions, for `plots`). What a
        run reports is what it ships."""
        raise NotImplementedError

    def report(self, metrics: dict) -> str:
        """The test metrics as a text table for the log."""
        raise NotImplementedError

    def headline(self, metrics: dict) -> str:
        """The test metrics in one phrase, e.g. 'test accuracy 0.81, macro-F1 0.80'."""
        raise NotImplementedError

    def export(self, model, handles, data, inputs, fitted: dict, base: Path, config, metadata: dict, log=print) \
            -> tuple[Path, dict]:
        """Publishes the next version under `base` with `metadata` in it (tfbert.export.publish), its input side
        from `inputs.settings` and what `after_training` fitted; returns its path and facts about the export for the
        run summary."""
        raise NotImplementedError

    def plots(self, metrics: dict, predictions, data, run_dir: Path) -> None:
        """Task-specific plots in the run folder, from `score_export`'s metrics and predictions (the loop draws the
        training curves)."""

    def example_data(self, directory: Path, rows: int = 48) -> dict:
        """Writes a small real labelled sample in the task's file formats (train/valid/test) into `directory` and
        returns the settings that read it. The conformance test (tests/test_tasks.py) trains every registered task
        on it; it also shows the formats a task reads."""
        raise NotImplementedError

    def head(self, inputs: dict, outputs: dict, data, config, prefix: str = "", seed: int = 0):
        """The task's head on a shared encoder: `inputs` (the encoder inputs dict) and `outputs` (its outputs dict)
        -> the head's output tensor, its layers' names prefixed with `prefix`; for a multitask model
        (tfbert.tasks.multitask) to hold the task. None: the task cannot be a member (the default)."""
        return None

    def serving_head(self, data, fitted: dict) -> dict:
        """That head as a multitask export serves it (tfbert.export.multitask: serving kind, labels, thresholds or
        target), from the data and what `after_training` fitted."""
        raise NotImplementedError

    def summary_extras(self, data) -> dict:
        """Task-specific facts for metrics.json."""
        return {}
