"""Search training settings (learning rate, batch size, epochs, dropout, layer-wise rates, layer freezing) on a
subsample, within a time budget, and write the best as a `python -m tfbert.train --config` file.

    python -m tfbert.tune --task sentiment --max-trials 8 --budget-minutes 60 --output tuning/sentiment
    python -m tfbert.train --config tuning/sentiment/best.json      # train the found settings on all the data

Takes every `python -m tfbert.train` flag (data, encoder, fixed settings). Each trial is a run of tfbert's training
loop on --max-train-examples rows (default here: 2000), scored on the validation split by the task's metric
(classification: macro-F1), without test evaluation or export. The first trial is tfbert's own settings (the
baseline). Rerunning with the same --output continues the search: finished trials are kept, an interrupted one
resumes. OUTPUT gets trials.csv, trials.png, best.json (and search state).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfbert.config import ConfigError, make_config, read_config_file
from tfbert.config import build_parser as _config_parser
from tfbert.tasks import CATALOG
from tfbert.tuning.search import ALGORITHMS

__all__ = ["build_parser", "tune", "main"]

# Where tune's defaults differ from train's: a subsample, and no --min-steps floor, which on a subsample would
# raise every trial's epochs to the same count and so hide the searched epochs.
TUNE_DEFAULTS = {"max_train_examples": 2000, "min_steps": 0}


def build_parser() -> argparse.ArgumentParser:
    ap = _config_parser(CATALOG, description=__doc__)
    ap.prog = "python -m tfbert.tune"
    for action in ap._actions:  # train's help states train's defaults
        if action.dest in TUNE_DEFAULTS:
            action.help = action.help.rsplit(" (default", 1)[0] + f" (default here: {TUNE_DEFAULTS[action.dest]})"
    group = ap.add_argument_group("search")
    group.add_argument("--output", required=True, metavar="DIR",
                       help="the search's folder: trials, trials.csv, trials.png, best.json; rerun with the same DIR "
                            "to continue")
    group.add_argument("--max-trials", type=int, default=10, metavar="N",
                       help="trials in all, those of earlier runs into --output included (default: 10)")
    group.add_argument("--budget-minutes", type=float, default=60.0, metavar="M",
                       help="no trial starts once the search (all runs into --output together) has taken M minutes; "
                            "the running trial finishes (default: 60)")
    group.add_argument("--search-space", metavar="FILE",
                       help="JSON object: setting -> list of choices (null = off) or {\"min\", \"max\", \"log\", "
                            "\"step\"} range (default: learning rate, batch size, epochs, dropout, --layer-lr-decay, "
                            "--freeze-layers around the task's values)")
    group.add_argument("--algorithm", choices=ALGORITHMS, default="random",
                       help="KerasTuner oracle: random, or bayesian (Gaussian process; random for its first "
                            "3 x the searched settings trials) (default: random)")
    return ap


def tune(settings: dict, output, *, max_trials: int = 10, budget_minutes: float = 60.0, search_space=None,
         algorithm: str = "random", log=print) -> dict:
    """The search as a function: `settings` are train's flags as keywords (the data, the fixed settings).

    Returns the report: trials, completed, best_trial, best_<monitor>, best_values, first_trial (the baseline),
    stopped_by, spent_seconds."""
    from tfbert import tasks
    from tfbert.fit import resolve_run_encoder
    from tfbert.tuning import space as spaces
    from tfbert.tuning.search import search

    if max_trials < 1:
        raise ConfigError("--max-trials must be at least 1")
    if budget_minutes <= 0:
        raise ConfigError("--budget-minutes must be positive")
    fixed = dict(settings)
    base = make_config({**TUNE_DEFAULTS, **fixed})
    task = tasks.create(base.task)
    base = base.with_task_defaults(task, log)
    base.check()
    base.check_task(task)
    task.check_config(base, log=lambda *_: None)
    monitor = task.monitor_of(base)
    layers = _encoder_layers(resolve_run_encoder(base, log=lambda *_: None).encoder)

    if search_space is None:
        space = {k: v for k, v in spaces.default_space(base, layers).items() if k not in fixed}
        where = "the default search space"
        if not space:
            raise ConfigError("every searched setting is given as a flag: nothing left to search")
    else:
        space = spaces.read_space(search_space)
        where = f"--search-space {search_space}"
    spaces.check_space(space, base, where, layers)
    given = sorted(set(space) & set(fixed))
    if given:
        raise ConfigError(f"{where}: {given[0]} is searched and also given (--{given[0].replace('_', '-')}): "
                          "leave one out")
    log(f"tune: searching {', '.join(space)} for the best validation {monitor}; trials train on "
        f"{base.max_train_examples or 'all'} training rows, --min-steps {base.min_steps}")
    # best.json trains on all the data (no subsample) with the search's --min-steps, so its epochs stay as found.
    fixed = {"min_steps": base.min_steps, **fixed}
    return search(base, fixed, space, monitor, Path(output), max_trials=max_trials, budget_minutes=budget_minutes,
                  algorithm=algorithm, log=log)


def _encoder_layers(encoder_handle: str) -> int | None:
    from tfbert.encoders.convert import encoder_metadata
    return encoder_metadata(encoder_handle).get("config", {}).get("num_layers")


def main(argv=None) -> int:
    from tfbert.cli import run_cli
    from tfbert.data.tables import DataError
    from tfbert.encoders.checkpoint import CheckpointError
    from tfbert.encoders.registry import EncoderError

    def run(args):
        given = vars(args).copy()
        search_args = {k: given.pop(k) for k in ("output", "max_trials", "budget_minutes", "search_space",
                                                  "algorithm")}
        settings = read_config_file(given.pop("config")) if "config" in given else {}
        settings.update(given)
        try:
            make_config(settings)
        except TypeError as e:
            raise ConfigError(str(e)) from None
        result = tune(settings, **search_args)
        output = Path(search_args["output"])
        monitor = result["monitor"]
        if not result.get("completed"):
            print(f"tune: no trial finished ({result['stopped_by']}); nothing written to {output}/best.json")
            return 0
        first = result["first_trial"]
        baseline = f"; the first trial (tfbert's settings) {first[monitor]:.4f}" if first else ""
        print(f"tune: {result['completed']} trials finished, stopped because {result['stopped_by']} "
              f"(the search has taken {result['spent_seconds'] / 60:.1f} min). Best validation {monitor} "
              f"{result[f'best_{monitor}']:.4f} (trial {result['best_trial']}){baseline}.\n"
              f"tune: wrote {output}/best.json, {output}/trials.csv, {output}/trials.png; train the best with: "
              f"python -m tfbert.train --config {output}/best.json")

    return run_cli(build_parser(), run, argv, errors=(ConfigError, DataError, EncoderError, CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
