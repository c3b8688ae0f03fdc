"""Distillation (--teacher, python -m tfbert.distill): soft targets, the loss, the teacher's answers as targets, and
a smaller student trained from a teacher export through the command."""
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfbert.config import ConfigError
from tfbert.distillation import Teacher, distillation_loss, soft_targets, targets


def test_soft_targets_and_the_loss_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    np.testing.assert_allclose(soft_targets(p, 1.0), p, atol=1e-6)
    t2 = np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True)  # softmax(log p / 2)
    np.testing.assert_allclose(soft_targets(p, 2.0), t2, atol=1e-6)
    assert (soft_targets(p, 2.0).max(1) < p.max(1)).all()  # softer

    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    y = targets(np.array([0, 2]), t2)

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    soft = -(t2 * log_softmax(logits / 2.0)).sum(1)
    hard = -log_softmax(logits)[[0, 1], [0, 2]]
    weights = {0: 3.0, 1: 1.0, 2: 0.5}
    got = distillation_loss(2.0, 0.25, weights)(tf.constant(y), tf.constant(logits)).numpy()
    np.testing.assert_allclose(got, 0.25 * 4.0 * soft + 0.75 * np.array([3.0, 0.5]) * hard, rtol=1e-5)
    only_teacher = distillation_loss(2.0, 1.0)(tf.constant(y), tf.constant(logits)).numpy()
    np.testing.assert_allclose(only_teacher, 4.0 * soft, rtol=1e-5)


def test_the_teacher_answers_become_the_validation_targets(trained, tweets_csv, tiny_pair):
    """The student's validation batches carry the label id and softmax(log p / tau) of the teacher's own served
    probabilities, row for row; a teacher with other labels is refused by name."""
    from tfbert import tasks
    from tfbert.data.inputs import RunInputs
    from tfbert.data.pipeline import load_preprocess
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.train import parse_config

    _, summary = trained
    config = parse_config(["--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet",
                           "--label-column", "mood", "--encoder", str(tiny_pair), "--teacher", summary["export"],
                           "--distill-temperature", "3"])
    spec = tasks.spec("classify")
    config = config.with_task_defaults(spec, lambda *_: None)
    data = spec.load_data(config)
    task = tasks.create("classify")
    inputs = RunInputs.from_config(load_preprocess(resolve_encoder(str(tiny_pair))), config)
    ds = task.datasets(data, inputs, config, log=lambda *_: None)
    got = np.concatenate([y.numpy() for _, y in ds.valid])
    teacher = Teacher(summary["export"])
    probs, _, _ = teacher.client.predict(data.valid["text"].tolist())
    want = soft_targets(probs[:, [teacher.labels.index(x) for x in data.labels]], 3.0)
    np.testing.assert_array_equal(got[:, 0], data.valid["label_id"].to_numpy())
    np.testing.assert_allclose(got[:, 1:], want, atol=1e-5)
    with pytest.raises(ConfigError, match="are not the data's"):
        teacher.probabilities(data.valid, ["a", "b", "c"], False)


def test_distill_trains_a_smaller_student_that_names_its_teacher(trained, tmp_path, checkpoint_dir, monkeypatch):
    """python -m tfbert.distill takes the teacher's data and settings, builds half of the student encoder's layers
    (every other one) and exports a classifier whose metadata and metrics name the teacher."""
    from conftest import write_hf_checkpoint

    from tfbert.distill import main
    from tfbert.encoders.convert import read_metadata as encoder_metadata
    from tfbert.serving import load, read_metadata
    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path / "cache"))
    _, summary = trained
    hf = write_hf_checkpoint(tmp_path / "hf", checkpoint_dir / "vocab.txt", layers=2, hidden=32, inter=64)
    # The version itself: other tests publish later versions into the shared teacher's model folder.
    rc = main(["--teacher", summary["export"], "--encoder", str(hf), "--max-seq-length", "64", "--epochs", "1",
               "--min-steps", "10", "--batch-size", "16", "--output-dir", str(tmp_path / "out"), "--verbose", "0"])
    assert rc == 0
    student = tmp_path / "out" / "moods-student" / "1"
    meta = read_metadata(student)
    assert meta["teacher"]["export"] == summary["export"] and meta["settings"]["teacher"] == summary["export"]
    taught = read_metadata(summary["export"])["settings"]
    assert all(meta["settings"][k] == taught[k] for k in ("train_file", "text_column", "label_column", "seed"))
    assert encoder_metadata(Path(meta["encoder"]).parent)["source_layers"] == [0]  # 1 of 2 layers, spread
    metrics = json.loads(next((tmp_path / "out" / "moods-student" / "runs").glob("*/metrics.json")).read_text())
    assert 0 <= metrics["teacher"]["valid_accuracy"] <= 1 and metrics["test"]["macro_f1"] >= 0
    probs, _, labels = load(student).predict(["what a day", ""])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert set(labels) <= set(meta["labels"])
