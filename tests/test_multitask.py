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


def test_each_member_is_drawn_its_own_tasks_passes_over_the_default_epochs():
    """sentiment (2 epochs alone), ner (12) and multilabel (10): an epoch holds 2/12, 12/12 and 10/12 of their
    passes, so the multitask default (12 epochs) trains each as often as it trains alone."""
    from tfbert.tasks.multitask import draw_counts, member_passes
    own = [spec(t).defaults["epochs"] for t in ("sentiment", "ner", "multilabel")]
    assert max(own) == spec("multitask").defaults["epochs"]
    counts = draw_counts([930, 60, 60], passes=member_passes(own))
    assert counts == [155, 60, 50]
    assert [c * max(own) for c in counts] == [930 * 2, 60 * 12, 60 * 10]  # the single runs' batches


def test_joint_batches_route_each_batch_to_its_head_with_zero_weight_elsewhere():
    import tensorflow as tf

    from tfbert.tasks.multitask import joint_batches

    def member(rows, width, dtype, value, batches):
        x = {k: tf.fill([rows * batches, 5], value) for k in ("input_word_ids", "input_mask", "input_type_ids")}
        y = tf.zeros([rows * batches, *width], dtype) + tf.cast(value % 2, dtype)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(rows)

    sets = [("a", member(4, [], tf.int64, 1, 3)), ("b", member(2, [3], tf.float32, 2, 2))]
    ds = joint_batches(sets, [np.array([0.5, 2.0], np.float32), None], [3, 2], seed=0)
    assert ds.cardinality().numpy() == 5
    orders = []
    for _ in range(4):  # epochs: the same batches per member, in a reshuffled order
        order = []
        for x, y, w in ds:
            own = "a" if int(x["input_word_ids"][0, 0]) == 1 else "b"
            other = "b" if own == "a" else "a"
            order.append(own)
            assert y["a"].shape == (len(w["a"]),) and y["b"].shape == (len(w["b"]), 3)
            assert not np.any(w[other].numpy()) and not np.any(y[other].numpy())
            # Member a's class weights by its label (1 -> 2.0); member b unweighted.
            assert np.all(w[own].numpy() == (2.0 if own == "a" else 1.0))
        assert sorted(order) == ["a", "a", "a", "b", "b"]
        orders.append("".join(order))
    assert len(set(orders)) > 1


def test_head_of_a_single_task_export_is_refused(trained):
    from tfbert.serving import load
    _, summary = trained
    with pytest.raises(ValueError, match="a single-task model .* has no heads"):
        load(summary["export"], head="sentiment")


def test_the_tag_loss_is_per_sentence_so_a_zero_weight_batch_adds_nothing():
    """masked_tag_loss through Keras' reduction: the mean over the batch's labelled positions as before, and 0 for
    a batch of another head (sample weights 0), which Keras could not apply to a scalar loss."""
    import tensorflow as tf
    from tf_keras.src.losses import LossFunctionWrapper

    from tfbert.tasks.ner import IGNORE, masked_tag_loss
    labels = np.array([[1, 2, IGNORE, IGNORE], [0, IGNORE, 3, 1]])
    logits = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(np.maximum(labels, 0), logits).numpy()
    loss = LossFunctionWrapper(masked_tag_loss)
    assert np.isclose(float(loss(labels, logits)), (ce * (labels != IGNORE)).sum() / (labels != IGNORE).sum())
    assert float(loss(labels, logits, sample_weight=np.zeros(2))) == 0.0
