"""The task registry: the one place a task is registered. Adding a task = a module here + one line below.

Each task is a tfbert.tasks.base.Task subclass; the training loop (tfbert/fit.py), the CLI's --task choices and
per-task defaults, and the conformance test (tests/test_tasks.py) all read this registry.
"""
from __future__ import annotations

from tfbert.config import register_options
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.classification import ClassificationTask, SentimentTask
from tfbert.tasks.multilabel import MultilabelTask
from tfbert.tasks.ner import NerTask
from tfbert.tasks.qa import QaTask
from tfbert.tasks.regression import RegressionTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (SentimentTask, ClassificationTask, NerTask, MultilabelTask, RegressionTask,
                                                    QaTask)}
register_options(cls.options for cls in TASKS.values() if cls.options)

__all__ = ["TASKS", "Task", "Datasets", "create"]


def create(name: str) -> Task:
    """A new task object for one run."""
    if name not in TASKS:
        from tfbert.config import ConfigError
        raise ConfigError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]()
