"""--task multitask: the member settings and their errors, the sampling rule, the joint batches and the head
clients. Training, export, fresh-process reload, hostile inputs and predict/evaluate per head are the conformance
test's (tests/test_tasks.py, which trains the two-member example_data)."""
import json

import numpy as np
import pytest

from tfbert.config import ConfigError, make_config
from tfbert.tasks import spec


def _config(**settings):
    return make_config({"task": "multitask", **settings}).with_task_defaults(spec("multitask"), log=lambda *_: None)


def _members(tmp_path, entries, **settings):
    path = tmp_path / "tasks.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    config = _config(tasks_file=str(path), **settings)
    multitask = spec("multitask")
    multitask.check_config(config)
    return multitask.members(config, log=lambda *_: None)


def test_each_member_keeps_its_own_task_defaults_and_options(tmp_path):
    members = _members(tmp_path, [{"task": "sentiment", "name": "mood", "class_weights": "balanced"},
                                  {"task": "multilabel"}, {"task": "regression", "train_file": "s.csv",
                                                           "label_column": "score", "monitor": "pearson"}])
    by_name = {name: config for name, _, config in members}
    assert list(by_name) == ["mood", "multilabel", "regression"]
    # Each head's pooling is its task's default (multi-label: mean), its options its own; loop settings shared.
    assert [by_name[n].pooling for n in by_name] == ["pooled", "mean", "pooled"]
    assert by_name["mood"].class_weights == "balanced" and by_name["regression"].monitor == "pearson"
    assert by_name["regression"].train_file == "s.csv" and by_name["regression"].label_column == "score"
    assert {c.learning_rate for c in by_name.values()} == {spec("multitask").defaults["learning_rate"]} and {c.task for c in by_name.values()} == \
        {"sentiment", "multilabel", "regression"}


@pytest.mark.parametrize("entries, message", [
    ('[{"task": "sentiment"},', "not valid JSON (line 1, column 24: Expecting value)"),
    ('{"task": "sentiment"}', "must hold a JSON list of objects"),
    ([{"task": "sentiment"}], "needs at least two tasks, not 1"),
    ([{"task": "sentiment"}, {"task": "qa"}], "task 2 ('qa'): a multitask model holds sentiment, classify, ner"),
    ([{"task": "sentiment"}, {"task": "ner", "long_texts": "head-tail"}], "unknown setting 'long_texts'"),
    ([{"task": "sentiment"}, {"task": "sentiment"}], "task 2 ('sentiment'): the head name 'sentiment' is taken"),
    ([{"task": "sentiment", "name": "Bad name"}, {"task": "multilabel"}], "name 'Bad name' must match"),
    ([{"task": "sentiment", "label_separator": "|"}, {"task": "multilabel"}],
     "task 1 ('sentiment'): unknown setting 'label_separator'"),
    ([{"task": "classify"}, {"task": "multilabel"}], "task 1 ('classify'): --task classify needs --train-file"),
    ([{"task": "sentiment", "calibrate": True}, {"task": "multilabel"}], "--calibrate"),
    ([{"task": "sentiment"}, {"task": "multilabel", "tflite": True}], "task 2 ('multilabel'): --teacher, --calibrate, "
                                                                      "--tune-threshold and --tflite are not yet"),
])
def test_a_bad_tasks_file_is_refused_naming_the_file_and_member(tmp_path, entries, message):
    with pytest.raises(ConfigError) as e:
        _members(tmp_path, entries)
    assert message in str(e.value) and str(tmp_path / "tasks.json") in str(e.value)


@pytest.mark.parametrize("settings, message", [
    ({"long_texts": "head-tail"}, "ner'.*--long-texts head-tail: --task ner tags every word"),
    ({"train_file": "x.csv"}, "--train-file: --task multitask reads each member's data settings from --tasks-file"),
    ({"label_column": "stars"}, "--label-column: --task multitask"),
    ({"long_texts": "windows"}, "--long-texts windows"),
    ({"sampling_temperature": 0.0}, "--sampling-temperature must be > 0"),
])
def test_run_wide_data_settings_are_refused(settings, message):
    config, multitask = _config(**settings), spec("multitask")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        multitask.check_config(config)
        multitask.members(config, log=lambda *_: None)  # each member's own checks (ner's long texts)


def test_the_default_members_are_the_built_in_tweets_ner_and_entity_types():
    assert [(name, member.name) for name, member, _ in spec("multitask").members(_config())] == \
        [("sentiment", "sentiment"), ("ner", "ner"), ("multilabel", "multilabel")]


def test_draw_counts_are_proportional_at_temperature_one_and_flatten_above_it():
    from tfbert.tasks.multitask import draw_counts
    assert draw_counts([300, 20, 7]) == [300, 20, 7]  # every member's own batches: each row once an epoch
    hot = draw_counts([300, 20, 7], temperature=2.0)
    assert sum(hot) == 327 and hot[0] < 300 and hot[1] > 20 and hot[2] > 7
    # Shares follow steps^(1/T) (sqrt at T=2), rounded to whole batches.
    share = np.sqrt([300, 20, 7]) / np.sqrt([300, 20, 7]).sum()
    assert np.abs(np.asarray(hot) - share * 327).max() < 1
    assert draw_counts([1000, 1], temperature=1e6)[1] >= 163  # near uniform; never below one batch


def test_each_member_is_drawn_the_passes_it_makes_alone_over_the_default_epochs():
    """sentiment (2 epochs alone), ner (12) and multilabel (10): an epoch holds 2/12, 12/12 and 10/12 of their
    passes, so the multitask default (12 epochs) trains each as often as it trains alone; a member that --min-steps
    would give more epochs alone (63 batches: 5 epochs to reach 300 steps) gets them here too."""
    from tfbert.tasks.multitask import draw_counts, member_passes
    own = [spec(t).defaults["epochs"] for t in ("sentiment", "ner", "multilabel")]
    assert max(own) == spec("multitask").defaults["epochs"]
    counts = draw_counts([930, 60, 60], passes=member_passes([930, 60, 60], own, min_steps=300))
    assert counts == [155, 60, 50]
    assert [c * max(own) for c in counts] == [930 * 2, 60 * 12, 60 * 10]  # the single runs' batches
    floored = draw_counts([63, 60, 60], passes=member_passes([63, 60, 60], own, min_steps=300))
    assert floored == [26, 60, 50] and floored[0] * 12 >= 300  # 5 of its passes over 12 epochs, as alone
    assert member_passes([5, 5], [2, 2], min_steps=300) == [1.0, 1.0]  # both floored to 60 epochs: one pass each
