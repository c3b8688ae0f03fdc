"""The task registry: the one place a task is registered. Adding a task = its spec in tfbert/tasks/catalog.py (one
line in CATALOG) + its implementation module here.

The command line and a run's first checks read the specs (tfbert.tasks.catalog, no TensorFlow); `create` and
TASKS / LOOP_TASKS (name -> implementation class, imported on first use) give the full tasks to the training loop
(tfbert/fit.py) and the conformance test (tests/test_tasks.py).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from tfbert.tasks.catalog import CATALOG, LOOP_CATALOG, TaskSpec, spec

__all__ = ["CATALOG", "LOOP_CATALOG", "TASKS", "LOOP_TASKS", "TaskSpec", "create", "spec"]


class Implementations(Mapping):
    """Name -> a task's implementation class (a tfbert.tasks.base.Task), its module imported on first use (it
    imports TensorFlow)."""

    def __init__(self, catalog: dict[str, type[TaskSpec]]):
        self._catalog = catalog

    def __getitem__(self, name: str) -> type:
        module, cls = self._catalog[name].implementation.split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog)

    def __len__(self) -> int:
        return len(self._catalog)


TASKS = Implementations(CATALOG)
"""The tasks of `python -m tfbert.train --task`: name -> implementation class."""
LOOP_TASKS = Implementations(LOOP_CATALOG)
"""Every task the loop runs (also pre-training's mlm): name -> implementation class."""


def create(name: str):
    """A new task object (tfbert.tasks.base.Task) for one run; ConfigError naming an unknown task."""
    spec(name)
    return LOOP_TASKS[name]()
