"""--window-pooling (issue 29): mean, max and fitted attention over a long text's windows, the same in the training
pipeline's scoring and in the exported graph; a polar window among neutral ones decides the label under the default;
attention is fitted after training on the validation texts and recorded in the export."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from tfbert.config import ConfigError, RunConfig
from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import WINDOW_POOLING
from tfbert.data.windows import MIN_FIT_TEXTS, WINDOW_POOLINGS, fit_attention, pool_windows
from tfbert.encoders.bert import INPUT_KEYS

# --max-seq-length 16: windows of 14 wordpieces advancing by 7.
SEQ = 16


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    return hub.load(str(tiny_pair / "preprocess"))


@pytest.fixture(scope="module")
def zebra(preprocess):
    return int(preprocess.tokenize(tf.constant(["zebra"])).flat_values[0])


def _text(n: int, polar_at: int | None = None) -> str:
    words = ["hello"] * n
    if polar_at is not None:
        words[polar_at] = "zebra"
    return " ".join(words)


def _polar_probe(zebra: int):
    """A core whose window logits are [2, 0] (neutral) without "zebra" and [0, 3] (polar) with it."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    seen = keras.layers.Lambda(lambda x: tf.cast(tf.reduce_any(tf.equal(x, zebra), -1), tf.float32))(
        inputs["input_word_ids"])
    logits = keras.layers.Lambda(lambda s: tf.stack([2 * (1 - s), 3 * s], -1))(seen)
    return keras.Model(inputs, logits)


def _count_probe(zebra: int):
    """A core whose window logits vary with the window: [hello count / 4, 3 * zebra count, length / 7]."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}

    def counts(a):
        ids, mask = a
        mask = tf.cast(mask, tf.float32)
        z = tf.reduce_sum(tf.cast(tf.equal(ids, zebra), tf.float32), -1)
        n = tf.reduce_sum(mask, -1)
        return tf.stack([(n - z) / 4, 3 * z, n / 7], -1)

    return keras.Model(inputs, keras.layers.Lambda(counts)([inputs["input_word_ids"], inputs["input_mask"]]))


def _frame(texts, labels=None):
    return pd.DataFrame({"text": texts, "label_id": np.zeros(len(texts), np.int32) if labels is None else labels})


def test_poolings_are_the_mean_the_max_and_a_softmax_weighted_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 3)).astype(np.float32)
    item = np.array([0, 0, 1, 2, 2, 2, 2])
    weights = np.array([1.5, -0.5, 0.25], np.float32)
    got = {how: pool_windows(tf.constant(values), tf.constant(item), 3, how, weights).numpy()
           for how in WINDOW_POOLINGS}
    for t in range(3):
        v = values[item == t]
        a = np.exp(v @ weights - (v @ weights).max())
        np.testing.assert_allclose(got["mean"][t], v.mean(0), rtol=1e-6)
        np.testing.assert_allclose(got["max"][t], v.max(0), rtol=1e-6)
        np.testing.assert_allclose(got["attention"][t], (a / a.sum()) @ v, rtol=1e-5)
    # Before it is fitted (no weights), attention is the mean; one output per window (regression) pools as [k, 1].
    np.testing.assert_allclose(pool_windows(tf.constant(values), item, 3, "attention").numpy(), got["mean"])
    np.testing.assert_allclose(pool_windows(tf.constant(values[:, 0]), item, 3, "attention", weights[:1]).numpy(),
                               pool_windows(tf.constant(values[:, :1]), item, 3, "attention", weights[:1]).numpy()[:, 0],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="mean, max, attention, not 'sum'"):
        pool_windows(tf.constant(values), item, 3, "sum")


@pytest.mark.parametrize("how", WINDOW_POOLINGS)
def test_each_pooling_serves_what_the_pipeline_scores(preprocess, zebra, tiny_pair, tmp_path, how):
    """The exported classifier's graph (ClassifierServer, the module the SavedModel holds) pools a text's windows
    exactly as validation and the test report do (TextPipeline.pool over model.predict), for every mode."""
    from tfbert.export.classifier import ClassifierServer
    settings = InputSettings(SEQ, "windows", window_pooling=how,
                             pooling_weights=(0.5, 0.3, -0.2) if how == "attention" else None)
    texts = [_text(40, 3), _text(5), _text(23, 22), _text(60), "zebra " + _text(30, 15)]
    core = _count_probe(zebra)
    pipe = settings.pipeline(preprocess)
    expected = pipe.pool(core.predict(pipe.dataset(_frame(texts), 4), verbose=0), _frame(texts))
    assert len({tuple(row) for row in np.round(expected, 3)}) > 2 and pipe.count(_frame(texts)) > 3 * len(texts)
    server = ClassifierServer(str(tiny_pair / "preprocess"), core, ["a", "b", "c"], settings, tmp_path / "labels.txt")
    served = server.serve(tf.constant(texts))["probabilities"].numpy()
    np.testing.assert_allclose(served, tf.nn.softmax(expected).numpy(), rtol=1e-5, atol=1e-6)
    if how == "mean":  # the modes differ on these texts, or the comparison above could not tell them apart
        others = [pool_windows(tf.constant(core.predict(pipe.dataset(_frame(texts), 4), verbose=0)),
                               pipe.window_items(_frame(texts)), len(texts), h, (0.5, 0.3, -0.2)).numpy()
                  for h in ("max", "attention")]
        assert all(np.abs(o - expected).max() > 0.1 for o in others)


@pytest.mark.parametrize("how", ["max", "attention"])
def test_a_polar_window_among_neutral_ones_decides_the_label(preprocess, zebra, how):
    """Toy: one "zebra" window (logits [0, 3]) among many neutral ones ([2, 0]). The mean answers neutral; max, and
    attention fitted on validation texts of that kind, answer polar wherever the window is, and still answer
    neutral for texts without it."""
    core = _polar_probe(zebra)
    settings = InputSettings(SEQ, "windows", window_pooling=how)
    if how == "attention":
        rng = np.random.default_rng(0)
        texts = [_text(int(n), int(rng.integers(0, n)) if i % 2 else None)
                 for i, n in enumerate(rng.integers(30, 80, 2 * MIN_FIT_TEXTS))]
        valid = _frame(texts, np.arange(len(texts)) % 2)
        pipe = settings.pipeline(preprocess)
        y = tf.constant(valid["label_id"].to_numpy(), tf.int64)
        weights, facts = fit_attention(core.predict(pipe.dataset(valid, 8), verbose=0), pipe.window_items(valid),
                                       len(valid), lambda p: tf.reduce_mean(
                                           tf.nn.sparse_softmax_cross_entropy_with_logits(y, p)))
        assert facts["fitted"] and facts["loss"] < facts["loss_at_mean"] / 2
        settings = InputSettings(SEQ, "windows", window_pooling="attention", pooling_weights=tuple(weights))
    test = _frame([_text(100, 0), _text(100, 50), _text(100, 99), _text(100), _text(7)])
    for pooling, expected in ((settings, [1, 1, 1, 0, 0]), (InputSettings(SEQ, "windows"), [0, 0, 0, 0, 0])):
        pipe = pooling.pipeline(preprocess)
        assert pipe.count(test) > 40
        pooled = pipe.pool(core.predict(pipe.dataset(test, 8), verbose=0), test)
        assert pooled.argmax(-1).tolist() == expected, pooling


def test_attention_stays_the_mean_without_enough_long_validation_texts():
    values = np.array([[1.0, 0.0], [0.0, 1.0]] * MIN_FIT_TEXTS, np.float32)
    short = np.arange(len(values))  # one window per text
    weights, facts = fit_attention(values, short, len(values), lambda p: tf.reduce_mean(tf.square(p)))
    assert weights == [0.0, 0.0] and not facts["fitted"] and facts["texts_with_several_windows"] == 0


def test_the_flag_needs_windows_and_ner_refuses_it():
    from tfbert.tasks.ner import NerTask
    with pytest.raises(ConfigError, match="--window-pooling max pools the windows of --long-texts windows"):
        RunConfig(window_pooling="max", epochs=1, learning_rate=1e-4, patience=1).check()
    RunConfig(window_pooling="max", long_texts="windows", epochs=1, learning_rate=1e-4, patience=1).check()
    # A run's default under windows is attention (it won on both long-text benchmarks); a pipeline's is the mean.
    assert RunConfig().window_pooling is None and WINDOW_POOLING == "mean"
    assert InputSettings.from_config(RunConfig(long_texts="windows")).window_pooling == "attention"
    with pytest.raises(ConfigError, match="--task ner does not pool windows"):
        NerTask().check_config(RunConfig(task="ner", long_texts="windows", window_pooling="attention"))


def test_training_fits_attention_on_the_validation_texts_and_the_export_serves_it(tiny_pair, tmp_path):
    """tfbert.fit under --long-texts windows pools by attention unless told otherwise: the weights fitted after training are in metrics.json and the
    export's metadata (made from the same InputSettings as its graph), and the export answers with them in a fresh
    process (the test report is its answers')."""
    from tfbert.export.publish import verify_in_fresh_process
    from tfbert.fit import fit
    from tfbert.train import parse_config
    rng = np.random.default_rng(1)
    rows = [(_text(int(n), int(rng.integers(0, n)) if i % 2 else None), "polar" if i % 2 else "neutral")
            for i, n in enumerate(rng.integers(20, 45, 40))]
    df = pd.DataFrame(rows, columns=["text", "label"])
    df.iloc[:24].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[24:].to_csv(tmp_path / "eval.csv", index=False)
    logs = []
    summary = fit(parse_config([
        "--verbose", "0", "--task", "classify", "--train-file", str(tmp_path / "train.csv"), "--valid-file",
        str(tmp_path / "eval.csv"), "--test-file", str(tmp_path / "eval.csv"), "--encoder", str(tiny_pair),
        "--batch-size", "8", "--epochs", "1", "--min-steps", "0", "--max-seq-length", str(SEQ), "--long-texts",
        "windows", "--output-dir", str(tmp_path / "out")]), log=logs.append)  # attention: the default
    fitted = summary["window_pooling"]
    assert fitted["fitted"] and fitted["texts_with_several_windows"] == 16 and fitted["loss"] <= fitted["loss_at_mean"]
    assert any(line.startswith("window pooling: attention fitted on the 16 validation rows") for line in logs)
    meta = json.loads((Path(summary["export"]) / "assets.extra" / "tfbert.json").read_text())
    assert meta["windows"]["pooling"] == "attention" and meta["windows"]["pooling_weights"] == fitted["weights"]
    texts = df.iloc[24:]["text"].tolist()
    served = verify_in_fresh_process(Path(summary["export"]), {"serving_default": {"text": texts}})["serving_default"]
    metrics = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    assert metrics["window_pooling"]["weights"] == fitted["weights"]
    from sklearn.metrics import f1_score
    assert f1_score(df.iloc[24:]["label"], served["label"], average="macro") == pytest.approx(
        summary["test"]["macro_f1"], abs=1e-9)


@pytest.mark.parametrize("kind", ["regression", "multilabel"])
def test_regression_and_multilabel_fit_attention_on_their_own_loss(preprocess, zebra, kind):
    """The regression and multi-label hooks give the fit their per-window outputs (standardised scores; logits) and
    their loss (squared error on standardised labels; binary cross-entropy): the loss at zero weights is the mean
    pooling's, and a "zebra" window among neutral ones is found by the fit as it is for classification."""
    from types import SimpleNamespace

    from tfbert.data.inputs import RunInputs
    from tfbert.data.multilabel import MultilabelDataset
    from tfbert.data.regression import ScoredDataset
    from tfbert.tasks.multilabel import MultilabelTask
    from tfbert.tasks.regression import RegressionTask
    rng = np.random.default_rng(2)
    texts = [_text(int(n), int(rng.integers(0, n)) if i % 2 else None)
             for i, n in enumerate(rng.integers(30, 80, 2 * MIN_FIT_TEXTS))]
    polar = np.arange(len(texts)) % 2
    two = _polar_probe(zebra)
    core = keras.Model(two.inputs, keras.layers.Lambda(lambda x: x[:, 1:] - 1.0)(two.output))  # -1 or 2 per window
    empty = pd.DataFrame({"text": [], "label": []})
    if kind == "regression":
        data = ScoredDataset(empty, pd.DataFrame({"text": texts, "label": 10.0 + 4 * polar}), empty, False, 12.0, 2.0)
        task, target = RegressionTask(), (polar[:, None] * 4 - 2) / 2.0  # standardised: -1 or 1
    else:
        data = MultilabelDataset(empty, pd.DataFrame({"text": texts, "labels": [["zebra"] if p else [] for p in polar]}),
                                 empty, ["zebra"])
        task, target = MultilabelTask(), polar[:, None].astype(np.float32)
    inputs = RunInputs(preprocess, InputSettings(SEQ, "windows", window_pooling="attention"))
    values, item, n, loss = task.window_outputs(core, data, inputs, SimpleNamespace(batch_size=8))
    mean = pool_windows(tf.constant(values), tf.constant(item), n).numpy()
    expected = (np.mean((mean - target) ** 2) if kind == "regression" else
                np.mean(np.maximum(mean, 0) - mean * target + np.log1p(np.exp(-np.abs(mean)))))
    assert values.shape == (len(item), 1) and n == len(texts) and float(loss(tf.constant(mean))) == pytest.approx(
        expected, rel=1e-5)
    weights, facts = fit_attention(values, item, n, loss)
    assert facts["fitted"] and weights[0] > 0 and facts["loss"] < facts["loss_at_mean"]


def test_the_benchmark_texts_carry_their_label_in_one_part_or_in_every_part(monkeypatch):
    """benchmarks/window_pooling.py's two families: one polar tweet at the recorded position among neutral ones
    (labelled with it) or neutral tweets only; and tweets that all share the text's label."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import window_pooling as bench
    tweets = pd.DataFrame({"text": [f"{label[:3]}{i}" for label in ("neutral", "negative", "positive") for i in range(9)],
                           "label": [label for label in ("neutral", "negative", "positive") for _ in range(9)]})
    parts = bench.one_part(tweets, 30, [5], np.random.default_rng(0))
    assert parts["label"].value_counts().to_dict() == {"negative": 10, "positive": 10, "neutral": 10}
    for row in parts.itertuples():
        words = row.text.split()
        polar = [i for i, w in enumerate(words) if not w.startswith("neu")]
        assert len(words) == 5 and row.length == 5
        if row.label == "neutral":
            assert polar == [] and np.isnan(row.position)
        else:
            assert len(polar) == 1 and words[polar[0]].startswith(row.label[:3]) and row.position == polar[0] / 4
    same = bench.same_label(tweets, 9, [3], np.random.default_rng(0))
    assert all(len(set(w[:3] for w in t.split())) == 1 and t[:3] == lab[:3] for t, lab in zip(same["text"], same["label"]))
