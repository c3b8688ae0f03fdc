"""The task registry: the one place a task is registered. Adding a task = a module here + one line below.

Each task is a tfbert.tasks.base.Task subclass; the training loop (tfbert/fit.py), the CLI's --task choices and
per-task defaults, and the conformance test (tests/test_tasks.py) all read this registry.
"""
from __future__ import annotations

from tfbert.config import register_options
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.classification import ClassificationTask, SentimentTask
from tfbert.tasks.mlm import MlmTask
from tfbert.tasks.multilabel import MultilabelTask
from tfbert.tasks.ner import NerTask
from tfbert.tasks.qa import QaTask
from tfbert.tasks.regression import RegressionTask

# The tasks of `python -m tfbert.train --task`: each exports a model that serves text.
TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (SentimentTask, ClassificationTask, NerTask, MultilabelTask,
                                                          RegressionTask, QaTask)}
# Every task the loop runs: also pre-training (`python -m tfbert.pretrain`), whose export is an encoder pair.
LOOP_TASKS: dict[str, type[Task]] = {**TASKS, MlmTask.name: MlmTask}
register_options(cls.options for cls in LOOP_TASKS.values() if cls.options)

__all__ = ["TASKS", "LOOP_TASKS", "Task", "Datasets", "create"]


def create(name: str) -> Task:
    """A new task object for one run."""
    if name not in LOOP_TASKS:
        from tfbert.config import ConfigError, did_you_mean
        raise ConfigError(f"unknown task {name!r}{did_you_mean(name, LOOP_TASKS)}; the tasks are {', '.join(TASKS)} "
                          "(and mlm, python -m tfbert.pretrain)")
    return LOOP_TASKS[name]()
