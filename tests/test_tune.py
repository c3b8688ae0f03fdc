"""python -m tfbert.tune: KerasTuner's oracle over tfbert's loop, on the tiny encoder and a tiny slice of tweets."""
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tfbert.config import ConfigError, RunConfig

SPACE = {"learning_rate": [1e-3, 5e-3], "dropout": {"min": 0.0, "max": 0.3}, "layer_lr_decay": [None, 0.8]}


@pytest.fixture
def settings(tiny_pair, tweets_csv):
    return dict(task="classify", train_file=str(tweets_csv), text_column="tweet", label_column="mood",
                encoder=str(tiny_pair), verbose=0, max_train_examples=48, batch_size=16, epochs=1,
                freeze_word_embeddings=False)


def _space(tmp_path, space=SPACE):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    return path


def _trial_ids(out):
    return [d.name for d in sorted((out / "trials").iterdir())]


def test_two_trials_write_the_best_as_a_train_config_and_a_rerun_keeps_them(tmp_path, settings):
    from tfbert.train import parse_config
    from tfbert.tune import tune

    out, lines = tmp_path / "search", []
    space = _space(tmp_path)
    result = tune(settings, out, max_trials=2, budget_minutes=30, search_space=space, log=lines.append)
    assert result["trials"] == result["completed"] == 2, result
    # Progress: a line before and after each trial.
    assert [line.split(":")[0] for line in lines if line.startswith("tune: trial")] == [
        "tune", "tune", "tune", "tune"] and sum("val_macro_f1 0." in line for line in lines
                                                if line.startswith("tune: trial")) == 2

    table = pd.read_csv(out / "trials.csv")
    assert list(table.columns) == ["trial", "status", "val_macro_f1", "learning_rate", "dropout", "layer_lr_decay",
                                   "epochs_run", "seconds"]
    assert list(table["status"]) == ["COMPLETED"] * 2 and table["val_macro_f1"].between(0, 1).all()
    # The first trial is tfbert's own settings where the space holds them (the baseline): decay off is a choice and
    # dropout 0.1 inside its range; the task's rate (5e-5) is not a choice, so the first choice.
    first = table.iloc[0]
    assert (first["learning_rate"], first["dropout"], first["layer_lr_decay"]) == (1e-3, 0.1, "off")
    assert (out / "trials.png").stat().st_size > 1000

    best_row = table.loc[table["val_macro_f1"].idxmax()]
    best = json.loads((out / "best.json").read_text())
    assert best["learning_rate"] == best_row["learning_rate"] and best["dropout"] == pytest.approx(best_row["dropout"])
    assert best["layer_lr_decay"] == (None if best_row["layer_lr_decay"] == "off" else float(best_row["layer_lr_decay"]))
    assert result["best_values"] == {k: best[k] for k in SPACE}
    # A train config: parsed by `tfbert.train --config`, the found values in, the search's subsample out.
    config = parse_config(["--config", str(out / "best.json")])
    assert isinstance(config, RunConfig) and config.learning_rate == best["learning_rate"]
    assert config.dropout == best["dropout"] and config.layer_lr_decay == best["layer_lr_decay"]
    assert config.max_train_examples is None and config.min_steps == 0 and config.train_file == settings["train_file"]
    # Each trial is a run of the loop, unexported: its metrics hold the score in the table, no weights are kept.
    run = out / "trials" / "0" / "classify" / "runs" / "unexported"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_val_macro_f1"] == pytest.approx(table["val_macro_f1"][0])
    assert not (run / "checkpoints").exists() and not list((out / "trials").glob("*/classify/[0-9]*"))
    assert json.loads((run / "config.json").read_text())["learning_rate"] == first["learning_rate"]

    # Rerun: the two finished trials are kept, not run again (a new trial after a rerun: the tests below).
    before = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/classify/runs/unexported/metrics.json")}
    lines.clear()
    result = tune(settings, out, max_trials=2, budget_minutes=30, search_space=space, log=lines.append)
    assert result["trials"] == result["completed"] == 2 and "limit" in result["stopped_by"]
    assert not [line for line in lines if line.startswith("tune: trial ")], lines
    assert len(before) == 2 and {p: p.stat().st_mtime_ns for p in before} == before
    assert _trial_ids(out) == ["0", "1"] and pd.read_csv(out / "trials.csv").equals(table)

    # A rerun with other fixed settings would mix two searches: refused, naming what differs.
    with pytest.raises(ConfigError, match="other settings .*batch_size"):
        tune({**settings, "batch_size": 8}, out, max_trials=3, search_space=space, log=lambda *_: None)


class FakeFit:
    """Stands in for the training loop where a test is about the search around it: records each trial's settings,
    takes `seconds`, scores by the learning rate; `interrupt_at` raises KeyboardInterrupt (Ctrl-C) in that call."""

    def __init__(self, seconds=0.0, interrupt_at=None):
        self.configs, self.seconds, self.interrupt_at = [], seconds, interrupt_at

    def __call__(self, config, log=print, export=True):
        assert export is False  # trials never export
        self.configs.append(config)
        if len(self.configs) == self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.seconds)
        Path(config.output_dir).mkdir(parents=True)
        return {"best_val_macro_f1": config.learning_rate * 100, "epochs_run": config.epochs}


def test_the_budget_stops_the_search_and_counts_over_reruns(tmp_path, settings, monkeypatch):
    from tfbert.tune import tune

    fake = FakeFit(seconds=4)
    monkeypatch.setattr(importlib.import_module("tfbert.fit"), "fit", fake)
    # 0.05 minutes (3 s) are spent during the first trial: no second one starts.
    result = tune(settings, tmp_path / "search", max_trials=5, budget_minutes=0.05, search_space=_space(tmp_path),
                  log=lambda *_: None)
    assert result["trials"] == 1 and len(fake.configs) == 1 and "budget" in result["stopped_by"]
    assert result["spent_seconds"] >= 4 and _trial_ids(tmp_path / "search") == ["0"]
    # What a rerun continues from is what was reported (it once missed the report's drawing time, so a rerun
    # reported less than the run before it).
    assert json.loads((tmp_path / "search" / "search.json").read_text())["spent_seconds"] == result["spent_seconds"]
    # Continuing the spent search starts no trial; a larger budget continues it.
    again = tune(settings, tmp_path / "search", max_trials=5, budget_minutes=0.05, search_space=_space(tmp_path),
                 log=lambda *_: None)
    assert again["trials"] == 1 and len(fake.configs) == 1 and "budget" in again["stopped_by"]
    assert again["spent_seconds"] >= result["spent_seconds"]
    more = tune(settings, tmp_path / "search", max_trials=2, budget_minutes=60, search_space=_space(tmp_path),
                log=lambda *_: None)
    assert more["trials"] == 2 and len(fake.configs) == 2 and "limit" in more["stopped_by"]


def test_an_interrupted_trial_runs_again_with_its_settings_and_finished_ones_do_not(tmp_path, settings, monkeypatch):
    from tfbert.tune import tune

    fake = FakeFit(interrupt_at=2)
    monkeypatch.setattr(importlib.import_module("tfbert.fit"), "fit", fake)
    space = _space(tmp_path, {**SPACE, "freeze_layers": [None, 1]})
    with pytest.raises(KeyboardInterrupt):
        tune(settings, tmp_path / "search", max_trials=3, search_space=space, log=lambda *_: None)
    interrupted = fake.configs[1]
    result = tune(settings, tmp_path / "search", max_trials=3, search_space=space, log=lambda *_: None)
    assert result["trials"] == result["completed"] == 3
    # Calls: trial 0, trial 1 (interrupted), trial 1 again with the same settings and folder, trial 2.
    assert len(fake.configs) == 4 and fake.configs[2] == interrupted
    assert fake.configs[0].learning_rate == 1e-3  # the first trial: tfbert's settings where the space has them
    table = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert list(table["trial"]) == [0, 1, 2] and list(table["status"]) == ["COMPLETED"] * 3
    # The table holds what each trial ran with: null as "off", whole numbers whole beside it (1, not 1.0).
    ran = [fake.configs[i].freeze_layers for i in (0, 2, 3)]
    assert list(pd.read_csv(tmp_path / "search" / "trials.csv", dtype=str)["freeze_layers"]) == [
        "off" if v is None else str(v) for v in ran]
    best = json.loads((tmp_path / "search" / "best.json").read_text())
    assert best["learning_rate"] == table.loc[table["val_macro_f1"].idxmax(), "learning_rate"] == 5e-3


@pytest.mark.parametrize("space, message", [
    ({"learning_rte": [1e-4]}, "learning_rte: unknown setting"),
    ({"train_file": ["a.csv"]}, "train_file: not a setting to search"),
    ({"dropout": [0.1, 1.5]}, r"dropout: 1.5 would fail the run's checks: --dropout must be in \[0, 1\)"),
    ({"batch_size": {"min": 8, "max": 32.5}}, "batch_size: .*whole-number"),
    ({"epochs": {"min": 3, "max": 1}}, "epochs: a range needs numbers with min < max"),
    ({"learning_rate": {"min": 0, "max": 1e-4, "log": True}}, "learning_rate: a log range needs min > 0"),
    ({"pooling": {"min": 1, "max": 2}}, "pooling: a range is for numbers"),
    ({"pooling": ["cls", "max"]}, "pooling: 'max' would fail .*--pooling must be one of"),
    ({"batch_size": 16}, "batch_size: expected a list of choices .*--batch-size 16"),
    ({"freeze_layers": [None, 3]}, "freeze_layers: 3 is above the encoder's 2 layers"),
    ({"layer_lr_decay": [0.9, "0.8"]}, "layer_lr_decay: '0.8' is not a valid float"),
    ({"epochs": []}, "epochs: an empty list"),
])
def test_a_bad_search_space_is_refused_naming_the_key(tmp_path, settings, space, message):
    from tfbert.tune import tune

    path = _space(tmp_path, space)
    with pytest.raises(ConfigError, match=message) as e:
        tune(settings, tmp_path / "search", search_space=path, log=lambda *_: None)
    assert f"--search-space {path}" in str(e.value)
    assert not (tmp_path / "search").exists()  # refused before anything ran


def test_cli_refuses_a_searched_setting_given_as_a_flag_in_one_line(tmp_path, tiny_pair, tweets_csv):
    path = _space(tmp_path)
    r = subprocess.run([sys.executable, "-m", "tfbert.tune", "--task", "classify", "--train-file", str(tweets_csv),
                        "--encoder", str(tiny_pair), "--learning-rate", "1e-4", "--search-space", str(path),
                        "--output", str(tmp_path / "search")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "error: --search-space" in r.stderr and "learning_rate is searched and also given" in r.stderr


def test_default_space_leaves_out_given_flags_and_fits_the_encoder():
    from tfbert.tasks import TASKS
    from tfbert.tuning.space import check_space, default_space, hyperparameters

    base = RunConfig(task="sentiment").with_task_defaults(TASKS["sentiment"])
    space = default_space(base, encoder_layers=6)
    assert set(space) == {"learning_rate", "batch_size", "epochs", "dropout", "layer_lr_decay", "freeze_layers"}
    assert space["freeze_layers"] == [None, 0, 3]
    check_space(space, base, "default", encoder_layers=6)
    hp = hyperparameters(space, base)
    # Defaults are tfbert's settings, so the first trial is the baseline.
    defaults = {p.name: p.default for p in hp.space}
    assert defaults["learning_rate"] == base.learning_rate and defaults["batch_size"] == 32
    assert defaults["epochs"] == base.epochs and json.loads(defaults["freeze_layers"]) is None
