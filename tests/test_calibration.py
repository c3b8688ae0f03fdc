"""Probability quality (log-loss, Brier, ECE), temperature scaling and decision thresholds: the numbers on cases
worked by hand, and the export applying what --calibrate and --tune-threshold fitted, in its graph."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfbert.data.inputs import InputSettings
from tfbert.metrics.calibration import decide, fit_on_validation, fit_temperature, nll, softmax, tune_threshold
from tfbert.metrics.classification import expected_calibration_error, probability_metrics, reliability_bins

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- metrics, by hand


def test_ece_of_a_hand_computed_case():
    # Bins (i/15, (i+1)/15]. Confidences 0.9 (right) and 0.9 (wrong): bin 13 = (0.867, 0.933], accuracy 0.5,
    # gap 0.4; 0.95 (right): bin 14, gap 0.05; 0.7 (right): bin 10 = (0.667, 0.733], gap 0.3.
    p = [[0.1, 0.9], [0.1, 0.9], [0.95, 0.05], [0.3, 0.7]]
    y = [1, 0, 0, 1]
    assert expected_calibration_error(y, p) == pytest.approx(2 / 4 * 0.4 + 1 / 4 * 0.05 + 1 / 4 * 0.3)
    bins = reliability_bins(y, p)
    assert len(bins["count"]) == 15 and bins["count"][13] == 2 and bins["count"][14] == 1 and bins["count"][10] == 1
    assert bins["accuracy"][13] == 0.5 and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][0] is None  # empty bins say so
    # Three classes: top label only. 0.5 on the wrong class (gap 0.5), 0.62 on the right one (gap 0.38).
    assert expected_calibration_error([1, 2], [[0.5, 0.3, 0.2], [0.2, 0.18, 0.62]]) == pytest.approx(0.44)


def test_log_loss_and_brier_by_hand():
    m = probability_metrics([1, 0], [[0.2, 0.8], [0.6, 0.4]])
    assert m["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert m["brier_score"] == pytest.approx((0.2 ** 2 + 0.4 ** 2) / 2)  # binary: the second label's probability
    m = probability_metrics([0, 2], [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    # multi-class: squared distance from the one-hot label, averaged over examples
    assert m["brier_score"] == pytest.approx(((0.09 + 0.04 + 0.01) + (0.01 + 0.09 + 0.16)) / 2)
    with pytest.raises(ValueError, match=r"label ids in 0..2"):
        probability_metrics([3], [[0.2, 0.3, 0.5]])


def _calibrated_sample(n=20000, classes=3, seed=0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, classes))
    p = softmax(logits)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, y


@pytest.mark.parametrize("classes", [2, 3])
def test_ece_is_near_zero_when_calibrated_and_grows_with_overconfidence(classes):
    logits, y = _calibrated_sample(classes=classes)
    calibrated = expected_calibration_error(y, softmax(logits))
    assert calibrated < 0.015
    over = [expected_calibration_error(y, softmax(logits * k)) for k in (1.5, 3.0)]
    assert calibrated < over[0] < over[1] and over[1] > 0.1


# --------------------------------------------------------------------------- temperature and threshold


def test_temperature_scaling_recovers_a_known_temperature_and_lowers_nll():
    logits, y = _calibrated_sample()
    assert fit_temperature(logits, y) == pytest.approx(1.0, abs=0.05)
    overconfident = logits * 2.5  # what softmax(overconfident / 2.5) calibrates
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(2.5, rel=0.05)
    assert nll(overconfident, y, t) < nll(overconfident, y) - 0.1
    facts = fit_on_validation(overconfident, y, ["a", "b", "c"], calibrate=True, tune=None)["calibration"]
    assert facts["temperature"] == t
    assert facts["valid"]["after"]["ece"] < 0.015 < 0.1 < facts["valid"]["before"]["ece"]
    assert facts["valid"]["after"]["log_loss"] < facts["valid"]["before"]["log_loss"]


def test_no_temperature_is_fitted_on_a_validation_split_without_errors():
    # Every argmax right: the log-loss falls all the way to T -> 0 (probabilities of 0 and 1); T = 1 is kept.
    logits, y = np.array([[3.0, -3.0], [-2.0, 2.0], [0.1, 0.0]]), np.array([0, 1, 0])
    with pytest.raises(ValueError, match="all 3 examples are classified correctly"):
        fit_temperature(logits, y)
    facts = fit_on_validation(logits, y, ["a", "b"], calibrate=True, tune=None)["calibration"]
    assert facts["temperature"] == 1.0 and "T = 1 kept" in facts["skipped"]
    assert facts["valid"]["before"] == facts["valid"]["after"]


def test_threshold_for_f1_on_a_hand_case():
    # Positives at 0.9, 0.35, 0.3; the negative at 0.1. At 0.5: F1 = 2/(1+3) = 0.5; below 0.3: every positive
    # found and the negative left out, F1 = 1. The threshold sits halfway between 0.3 and 0.1.
    threshold, f1 = tune_threshold([0.9, 0.35, 0.3, 0.1], [True, True, True, False])
    assert (threshold, f1) == (pytest.approx(0.2), 1.0)
    assert decide(np.array([[0.9, 0.1], [0.75, 0.25], [0.85, 0.15]]), threshold).tolist() == [0, 1, 0]


def test_threshold_is_the_best_f1_over_every_cut():
    from sklearn.metrics import f1_score
    rng = np.random.default_rng(1)
    p = np.round(rng.random(300), 2)  # with ties
    y = rng.random(300) < p
    threshold, f1 = tune_threshold(p, y)
    best = max(f1_score(y, p >= cut) for cut in np.unique(p))
    assert f1 == pytest.approx(best) and f1_score(y, p >= threshold) == pytest.approx(best)
    assert not np.isclose(p, threshold).any()  # between two probabilities, never on one


def test_threshold_errors_name_the_value_at_fault():
    logits = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"two labels, not 3 \(a, b, c\)"):
        fit_on_validation(logits, [0, 1, 2, 0], ["a", "b", "c"], calibrate=False, tune="f1")
    with pytest.raises(ValueError, match="no example of the positive label"):
        tune_threshold([0.2, 0.7], [False, False])


def test_tune_threshold_refuses_more_than_two_labels_before_training(tweets_csv):
    from tfbert.config import ConfigError, RunConfig
    from tfbert.tasks.classification import ClassificationTask
    task = ClassificationTask()
    config = RunConfig(task="classify", train_file=str(tweets_csv), text_column="tweet", label_column="mood",
                       options={"tune_threshold": "f1"}).with_task_defaults(task, log=lambda *_: None)
    with pytest.raises(ConfigError, match="--tune-threshold f1 needs two labels.*3: negative, neutral, positive"):
        task.load_data(config)


def test_export_refuses_a_bad_temperature_or_threshold(tmp_path):
    from tfbert.export.classifier import export_classifier
    for labels, kwargs, message in (
            (["a", "b", "c"], {"temperature": 0.0}, "temperature must be a positive finite number, not 0.0"),
            (["a", "b", "c"], {"threshold": 0.5}, r"two labels, not 3 \(a, b, c\)"),
            (["a", "b"], {"threshold": 1.0}, r"threshold must be between 0 and 1 \(exclusive\), not 1.0")):
        with pytest.raises(ValueError, match=message):  # refused before anything is loaded or written
            export_classifier(None, "unused", labels, tmp_path / "m", **kwargs)
        assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- trained with --calibrate, exported


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory, tiny_pair, tweets_csv):
    """The tiny encoder trained on the tweets without the neutral class, with --calibrate --tune-threshold f1."""
    from tfbert.fit import fit
    from tfbert.train import parse_config
    directory = tmp_path_factory.mktemp("binary")
    df = pd.read_csv(tweets_csv)
    path = directory / "binary.csv"
    df[df["mood"] != "neutral"].to_csv(path, index=False)
    lines = []
    config = parse_config([
        "--verbose", "0", "--task", "classify", "--train-file", str(path), "--text-column", "tweet",
        "--label-column", "mood", "--encoder", str(tiny_pair), "--precision", "fp32", "--no-freeze-word-embeddings",
        "--batch-size", "16", "--learning-rate", "5e-3", "--pooling", "mean", "--epochs", "1", "--min-steps", "20",
        "--calibrate", "--tune-threshold", "f1", "--output-dir", str(directory / "out")])
    return path, fit(config, log=lines.append), lines


@pytest.fixture(scope="module")
def trained_model(binary_run):
    """The run's best weights in a rebuilt Keras model, its preprocess handle, 96 texts and the model's logits."""
    import tensorflow as tf

    from tfbert.data.pipeline import TextPipeline, load_preprocess
    from tfbert.tasks.classification import build_classifier
    path, summary, _ = binary_run
    run = Path(summary["run_dir"])
    handles = json.loads((run / "run.json").read_text())["encoder_handles"]
    model = build_classifier(handles["encoder"], 2, pooling="mean")
    model.load_weights(str(run / "checkpoints" / "best")).expect_partial()
    texts = pd.read_csv(path)["tweet"].astype(str).tolist()[:96]
    pipe = TextPipeline(load_preprocess(handles["preprocess"]), 128)
    logits = model(pipe.encode(tf.constant(texts)), training=False).numpy()
    return model, handles["preprocess"], texts, logits


def test_calibrate_and_threshold_are_fitted_reported_and_stored(binary_run):
    _, summary, lines = binary_run
    calibration, threshold = summary["calibration"], summary["decision_threshold"]
    assert calibration["temperature"] > 0 and set(calibration["valid"]) == {"before", "after"}
    # T minimises the validation log-loss, so it cannot be above T = 1's
    assert calibration["valid"]["after"]["log_loss"] <= calibration["valid"]["before"]["log_loss"] + 1e-9
    assert threshold["positive_label"] == "positive" and 0 < threshold["value"] < 1
    assert threshold["valid_f1"] >= threshold["valid_f1_argmax"]
    assert any(line.startswith("calibration: temperature") for line in lines)
    run = Path(summary["run_dir"])
    assert json.loads((run / "metrics.json").read_text())["calibration"] == calibration
    meta = json.loads((Path(summary["export"]) / "assets.extra" / "tfbert.json").read_text())
    assert meta["calibration"] == calibration and meta["decision_threshold"] == threshold
    assert meta["temperature"] == calibration["temperature"] and meta["threshold"] == threshold["value"]
    for key in ("log_loss", "brier_score", "ece", "reliability"):
        assert key in summary["test"], key
    assert (run / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_export_applies_the_fitted_temperature_and_threshold_in_its_graph(binary_run, trained_model):
    import tensorflow as tf

    from tfbert.serving import load
    _, summary, _ = binary_run
    _, _, texts, logits = trained_model
    probs, label_ids, labels = load(summary["export"]).predict(texts)
    t, threshold = summary["calibration"]["temperature"], summary["decision_threshold"]["value"]
    loaded = tf.saved_model.load(summary["export"])
    assert loaded.temperature.numpy() == pytest.approx(t) and loaded.threshold.numpy() == pytest.approx(threshold)
    np.testing.assert_allclose(probs, softmax(logits, t), atol=1e-4)
    assert label_ids.tolist() == (probs[:, 1] >= threshold).astype(int).tolist()
    assert labels == [["negative", "positive"][i] for i in label_ids]


def test_temperature_and_threshold_act_in_the_serving_function(trained_model, tmp_path):
    """A temperature far from 1 and a threshold away from 0.5 in the server module itself (no refit involved):
    probabilities are softmax(logits / T) and the label changes exactly where p crosses the threshold."""
    import tensorflow as tf

    from tfbert.export.classifier import ClassifierServer
    model, preprocess, texts, logits = trained_model
    assert np.abs(softmax(logits, 3.0) - softmax(logits)).max() > 0.01  # the model's logits tell T=3 from T=1
    p = softmax(logits, 3.0)[:, 1]
    cut = float(np.median(p))  # half the texts on each side; those between cut and 0.5 change label
    server = ClassifierServer(preprocess, model, ["negative", "positive"], InputSettings(128), tmp_path / "labels.txt",
                              temperature=3.0, threshold=cut)
    out = server.serve(tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), softmax(logits, 3.0), atol=1e-4)
    served, probs = out["label_id"].numpy(), out["probabilities"].numpy()
    cut32 = np.float32(cut)  # the graph compares float32 probabilities with a float32 variable
    assert served.tolist() == (probs[:, 1] >= cut32).astype(int).tolist()
    flipped = served != probs.argmax(1)
    between = (min(cut32, 0.5) <= probs[:, 1]) & (probs[:, 1] < max(cut32, 0.5))
    assert flipped.any() and (flipped == between).all()


def test_evaluate_reports_probability_quality_and_draws_the_reliability_plot(binary_run, tmp_path):
    path, summary, _ = binary_run
    out = tmp_path / "metrics.json"
    r = subprocess.run([sys.executable, "-m", "tfbert.evaluate", "--model", summary["export"], "--test-file", path,
                        "--text-column", "tweet", "--label-column", "mood", "--output", out, "--plots",
                        tmp_path / "plots"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ece=" in r.stdout and "log_loss=" in r.stdout
    metrics = json.loads(out.read_text())
    assert 0 <= metrics["ece"] <= 1 and metrics["log_loss"] > 0 and 0 <= metrics["brier_score"] <= 1
    assert sum(metrics["reliability"]["count"]) == metrics["n"]
    for name in ("reliability.png", "confusion_matrix.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
