"""What a search leaves for its user: trials.csv (one row per trial), trials.png (scores by trial and against the
learning rate) and best.json, the best trial's settings as a `python -m tfbert.train --config` file."""
from __future__ import annotations

import math
from pathlib import Path

from tfbert.files import write_json
from tfbert.metrics.plots import plot_trials
from tfbert.tuning.space import decode

__all__ = ["write", "trial_rows", "best_settings"]

# The subsample is for the search: the chosen settings train on all the data.
SEARCH_ONLY = ("max_train_examples",)


def trial_rows(oracle, space: dict, monitor: str) -> list[dict]:
    """Every trial in the order they started: id, status, score, the settings tried, epochs run and seconds."""
    rows = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        metrics = trial.metrics
        value = (lambda name: metrics.get_last_value(name) if metrics.exists(name) else None)
        rows.append({"trial": trial_id, "status": trial.status, monitor: value(monitor),
                     **decode(space, {k: trial.hyperparameters.values.get(k) for k in space}),
                     "epochs_run": value("epochs_run"), "seconds": value("seconds")})
    return rows


def best_settings(fixed: dict, best_values: dict) -> dict:
    """The best trial as a config file: the user's settings (less the search's subsample), the found values."""
    return {**{k: v for k, v in fixed.items() if k not in SEARCH_ONLY}, **best_values}


def write(oracle, space: dict, monitor: str, fixed: dict, output: Path) -> dict:
    import pandas as pd

    rows = trial_rows(oracle, space, monitor)
    # "off" for null before pandas sees the column: None beside ints would make them floats (3 -> 3.0).
    shown = [{**r, **{k: "off" if r[k] is None else r[k] for k in space}} for r in rows]
    table = pd.DataFrame(shown, columns=["trial", "status", monitor, *space, "epochs_run", "seconds"])
    table["epochs_run"] = table["epochs_run"].astype("Int64")
    table.to_csv(output / "trials.csv", index=False)
    done = [r for r in rows if r["status"] == "COMPLETED" and r[monitor] is not None and not math.isnan(r[monitor])]
    result = {"trials": len(rows), "completed": len(done), "monitor": monitor}
    if not done:
        return result
    best = max(done, key=lambda r: r[monitor])  # ties: the earlier trial
    best_values = {k: best[k] for k in space}
    write_json(output / "best.json", best_settings(fixed, best_values))
    plot_trials(done, monitor, output / "trials.png")
    first = rows[0] if rows[0] in done else None
    return {**result, "best_trial": best["trial"], f"best_{monitor}": best[monitor], "best_values": best_values,
            "first_trial": first and {"trial": first["trial"], monitor: first[monitor]}}
