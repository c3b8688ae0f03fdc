"""Small, skewed data (issue 27): early stopping waits for --min-steps, and a run that never leaves the constant
answer (the majority class) says so in the log and in metrics.json."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tfbert.config import ConfigError
from tfbert.fit import COLLAPSE_MARGIN, early_stopping_hold, fit
from tfbert.tasks import TASKS
from tfbert.train import parse_config


def test_the_hold_covers_the_min_steps_and_the_thaw():
    assert early_stopping_hold(0, 0, 10) == 0
    assert early_stopping_hold(300, 0, 17) == 18  # 600 rows at batch 32: no stop before the 18 planned epochs
    assert early_stopping_hold(300, 0, 400) == 1
    assert early_stopping_hold(20, 95, 10) == 10  # under --unfreeze the later of the two


def test_a_flat_skewed_run_trains_its_min_steps_and_warns_that_it_collapsed(tmp_path, tiny_pair, tweets_csv):
    # 36 negative and 9 positive tweets, a rate too low to move the random tiny model: validation macro-F1 stays
    # flat, which stopped a patience-1 run after epoch 2 before --min-steps was a floor for early stopping.
    df = pd.read_csv(tweets_csv)
    skewed = pd.concat([df[df.mood == "negative"].head(36), df[df.mood == "positive"].head(9)])
    skewed.to_csv(tmp_path / "skewed.csv", index=False)
    lines = []
    config = parse_config(["--verbose", "0", "--task", "classify", "--train-file", str(tmp_path / "skewed.csv"),
                           "--text-column", "tweet", "--label-column", "mood", "--encoder", str(tiny_pair),
                           "--batch-size", "8", "--learning-rate", "1e-9", "--epochs", "1", "--patience", "1",
                           "--min-steps", "16", "--output-dir", str(tmp_path / "out")])
    summary = fit(config, log=lines.append, export=False)
    # 37 train rows at batch 8 (the stratified split keeps 4 for validation, 4 for test): 5 steps an epoch, so 16
    # steps plan 4 epochs, all trained.
    assert summary["planned_steps_per_epoch"] == 5 and summary["epochs_run"] == 4
    baseline = summary["constant_baseline"]
    assert baseline["collapsed"] and summary["best_val_macro_f1"] <= baseline["val_macro_f1"] + COLLAPSE_MARGIN
    assert baseline["answer"] == "the majority class 'negative' for every text"
    # 3 negative, 1 positive validation rows: the majority's macro-F1 over the two classes is (6/7) / 2.
    assert abs(baseline["val_macro_f1"] - 3 / 7) < 1e-6
    assert any(line.startswith("WARNING: the run never left the constant answer") for line in lines)
    assert any("early stopping off" in line for line in lines)
    assert json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())["constant_baseline"] == baseline


def test_valid_min_per_class_tops_up_the_split_from_training_without_overlap(tmp_path):
    from tfbert.data.classification import load_dataset
    rows = [(f"a {i}", "a") for i in range(800)] + [(f"b {i}", "b") for i in range(150)] + \
           [(f"c {i}", "c") for i in range(50)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(rows[:2] + rows[-2:], columns=["text", "label"]).to_csv(tmp_path / "test.csv", index=False)
    plain = load_dataset(tmp_path / "train.csv", None, tmp_path / "test.csv")
    assert plain.valid["label"].value_counts().to_dict() == {"a": 80, "b": 15, "c": 5}  # the stratified 10%
    floored = load_dataset(tmp_path / "train.csv", None, tmp_path / "test.csv", valid_min_per_class=25)
    valid, train = (d["label"].value_counts().to_dict() for d in (floored.valid, floored.train))
    # b reaches 25; c (50 rows) stops at a third, 16; a already has more; nothing is lost or seen twice.
    assert valid == {"a": 80, "b": 25, "c": 16} and train == {"a": 720, "b": 125, "c": 34}
    assert not set(floored.valid["text"]) & set(floored.train["text"])
    assert set(plain.valid["text"]) <= set(floored.valid["text"])
    assert any("b +10, c +11" in note for note in floored.notes)
    spec, flags = TASKS["classify"](), ["--task", "classify", "--train-file", "x.csv", "--valid-min-per-class"]
    spec.check_config(parse_config([*flags, "25"]).with_task_defaults(spec))
    for more, message in ((["-1"], "must be 0 or more, not -1"),
                          (["25", "--valid-file", "v.csv"], "--valid-file v.csv was given")):
        with pytest.raises(ConfigError, match=message):
            spec.check_config(parse_config([*flags, *more]).with_task_defaults(spec))
