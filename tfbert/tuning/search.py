"""The search: KerasTuner's oracle proposes settings, each trial is a run of tfbert's own training loop.

KerasTuner is used for what it is good at (the oracle: random or Bayesian proposals, its state on disk, reloading
it, retrying the trial an interruption left unfinished), not for building models: a trial is `tfbert.fit.fit`
with the proposed settings and export=False, scored by the best validation value of the task's monitor.

OUTPUT/ holds:
    search.json          the fixed settings and the space (a rerun must match them) and the time spent so far
    keras_tuner/         KerasTuner's oracle and trial states (what makes a rerun continue)
    trials/<id>/         each trial's run folder (<model-name>/runs/unexported: config, metrics, history; no weights)
    trials.csv, trials.png, best.json   rewritten after every trial
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tfbert.config import ConfigError, RunConfig
from tfbert.files import write_json
from tfbert.progress import duration
from tfbert.tuning import report
from tfbert.tuning.space import apply, decode, hyperparameters, show

__all__ = ["search", "ALGORITHMS"]

ALGORITHMS = ("random", "bayesian")
PROJECT = "keras_tuner"


class _BudgetSpent(Exception):
    pass


def _oracle(algorithm: str, monitor: str, max_trials: int, hp, seed: int):
    """KerasTuner's oracle whose first proposal is the space's defaults (tfbert's settings: the baseline)."""
    import keras_tuner as kt

    base = {"random": kt.oracles.RandomSearchOracle, "bayesian": kt.oracles.BayesianOptimizationOracle}[algorithm]

    class DefaultsFirst(base):
        def populate_space(self, trial_id):
            if not self.trials:  # the first trial ever (the oracle's state survives reruns)
                return {"status": kt.engine.trial.TrialStatus.RUNNING,
                        "values": {p.name: p.default for p in self.hyperparameters.space}}
            return super().populate_space(trial_id)

    # A trial that fails is a fault to fix, not a point of the space: no retries, and stop at the first failure.
    return DefaultsFirst(objective=kt.Objective(monitor, "max"), max_trials=max_trials, hyperparameters=hp,
                         seed=seed, allow_new_entries=False, tune_new_entries=False, max_consecutive_failed_trials=1)


def search(base: RunConfig, fixed: dict, space: dict, monitor: str, output: Path, *, max_trials: int,
           budget_minutes: float, algorithm: str = "random", log=print) -> dict:
    """Runs trials until `max_trials` exist, the space is exhausted or the budget (all runs into `output` together)
    is spent; returns the report (tfbert.tuning.report.write). `base` is the trial settings without the searched
    ones, `fixed` the user's settings that best.json is built on."""
    import keras_tuner as kt

    from tfbert.fit import fit

    output.mkdir(parents=True, exist_ok=True)
    state_file = output / "search.json"
    identity = {"settings": base.replace(output_dir="").to_dict(), "space": space, "algorithm": algorithm}
    spent = 0.0
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        differ = _differences(state, identity)
        if differ:
            raise ConfigError(f"--output {output} holds a search with other {differ}; rerun it with the same "
                              "settings to continue it, or give another --output")
        spent = state["spent_seconds"]
        log(f"tune: continuing the search in {output} ({duration(spent)} of the budget spent)")
    budget = budget_minutes * 60
    started = time.monotonic()

    def spent_now() -> float:
        return spent + time.monotonic() - started

    def save_state() -> float:
        seconds = round(spent_now(), 1)
        write_json(state_file, {**identity, "spent_seconds": seconds})
        return seconds

    save_state()
    errors: list[Exception] = []

    class Tuner(kt.engine.base_tuner.BaseTuner):
        def pre_create_trial(self):
            if spent_now() >= budget:
                raise _BudgetSpent

        def run_trial(self, trial, *_, **__):
            values = decode(space, trial.hyperparameters.values)
            done = sum(t.status == "COMPLETED" for t in self.oracle.trials.values())
            log(f"tune: trial {trial.trial_id} ({done} done of at most {max_trials}; "
                f"{duration(max(budget - spent_now(), 0))} of the budget left): {show(values)}")
            config = apply(base, values).replace(output_dir=str(output / "trials" / trial.trial_id))
            t0 = time.monotonic()
            import tf_keras as keras
            keras.backend.clear_session()  # trials share the process: drop the previous trial's graph
            try:
                summary = fit(config, log=log, export=False)
            except Exception as e:
                errors.append(e)  # shown as the search's error, not buried in KerasTuner's trial record
                raise kt.errors.FatalError(str(e)) from e
            score = summary[f"best_{monitor}"]
            log(f"tune: trial {trial.trial_id}: {monitor} {score:.4f} after {summary['epochs_run']} epoch(s), in "
                f"{duration(time.monotonic() - t0)}")
            return {monitor: score, "seconds": round(time.monotonic() - t0, 1),
                    "epochs_run": summary["epochs_run"]}

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            save_state()
            report.write(self.oracle, space, monitor, fixed, output)

    oracle = _oracle(algorithm, monitor, max_trials, hyperparameters(space, base), base.seed)
    tuner = Tuner(oracle, directory=str(output), project_name=PROJECT, overwrite=False)
    tuner.oracle.max_trials = max_trials  # a rerun may raise or lower it (reloading restores the old one)
    stopped_by = "the trial limit was reached or the space exhausted"
    try:
        tuner.search(verbose=0)
    except _BudgetSpent:
        stopped_by = f"the budget of {budget_minutes:g} minutes was spent"
    except kt.errors.FatalError:
        if errors:
            raise errors[-1] from None
        raise
    finally:
        save_state()
    result = report.write(tuner.oracle, space, monitor, fixed, output)
    result["stopped_by"] = stopped_by
    # The time reported is the time saved (the report's drawing included): a rerun continues from exactly it.
    result["spent_seconds"] = save_state()
    return result


def _differences(saved: dict, now: dict) -> str:
    """Which parts of a saved search differ from this one, named for the error."""
    parts = []
    old, new = saved.get("settings", {}), now["settings"]
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ("verbose", "debug"))
    if keys:
        parts.append("settings (" + ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys) + ")")
    if saved.get("space") != now["space"]:
        changed = sorted(k for k in set(saved.get("space", {})) | set(now["space"])
                         if saved.get("space", {}).get(k) != now["space"].get(k))
        parts.append(f"search space (keys {', '.join(changed)})")
    if saved.get("algorithm") != now["algorithm"]:
        parts.append(f"--algorithm ({saved.get('algorithm')} then)")
    return "; ".join(parts)
