"""Multi-label classification (--task multilabel): label formats and their errors, threshold tuning, metrics against
scikit-learn, the compiled micro-F1 and loss, and the export's label sets against its own probabilities."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfbert.data.inputs import InputSettings
from tfbert.data.multilabel import load_multilabel_dataset, multi_hot
from tfbert.data.tables import DataError
from tfbert.files import write_table
from tfbert.metrics.multilabel import apply_thresholds, multilabel_metrics, tune_thresholds

TEXTS = ["goal in the last minute", "the vote on the budget", "a new telescope", "budget cuts hit the football club",
         "nothing to see here", "rain all day"]
SETS = [["sports"], ["politics"], ["science"], ["politics", "sports"], [], []]
LABELS = ["politics", "science", "sports"]


def _write(directory: Path, name: str, frame: pd.DataFrame) -> str:
    path = directory / name
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        write_table(path, frame)
    return str(path)


def _load(directory: Path, frames: dict, **kwargs):
    files = {f"{split}_file": _write(directory, f"{split}{ext}", frame) for split, (ext, frame) in frames.items()}
    return load_multilabel_dataset(**files, text_column="body", **kwargs)


@pytest.mark.parametrize("fmt", ["json", "jsonl_list", "separator", "columns"])
def test_the_three_label_formats_read_the_same_sets(tmp_path, fmt):
    if fmt == "json":
        frame, ext, kwargs = pd.DataFrame({"body": TEXTS, "tags": [json.dumps(s) for s in SETS]}), ".csv", {}
    elif fmt == "jsonl_list":  # a JSONL cell holding a real list
        frame, ext, kwargs = pd.DataFrame({"body": TEXTS, "tags": SETS}), ".jsonl", {}
    elif fmt == "separator":
        frame, ext, kwargs = (pd.DataFrame({"body": TEXTS, "tags": [" | ".join(s) for s in SETS]}), ".csv",
                              {"label_separator": "|"})
    else:
        frame = pd.DataFrame({"body": TEXTS, **{lab: [int(lab in s) for s in SETS] for lab in LABELS}})
        ext, kwargs = ".csv", {"label_columns": "politics, science,sports"}
    data = _load(tmp_path, {"train": (ext, frame), "valid": (ext, frame), "test": (ext, frame)},
                 label_column="tags", **kwargs)
    assert data.labels == LABELS
    assert data.train["labels"].tolist() == [sorted(s) for s in SETS]
    assert data.targets(data.test).tolist() == multi_hot(SETS, LABELS).tolist()
    # Rows with no label are kept as "none of these" examples, and counted.
    assert len(data.train) == 6 and "train: 6 rows, 2 of them with no label" in " ".join(data.notes)


def test_a_malformed_json_list_names_the_file_row_and_value(tmp_path):
    frame = pd.DataFrame({"body": TEXTS[:3], "tags": ['["sports"]', "['politics']", "[]"]})
    with pytest.raises(DataError) as e:
        _load(tmp_path, {"train": (".csv", frame)}, label_column="tags")
    message = str(e.value)
    assert "train.csv" in message and "data row 2 (file line 3" in message and "['politics']" in message
    assert "--label-separator" in message

    frame = pd.DataFrame({"body": TEXTS[:2], "tags": ['["a", 3.5]', '"a"']})
    with pytest.raises(DataError, match=r"data row 1 .*3\.5"):
        _load(tmp_path, {"train": (".csv", frame)}, label_column="tags")


def test_a_label_column_that_is_not_zero_or_one_names_the_row_and_value(tmp_path):
    frame = pd.DataFrame({"body": TEXTS[:3], "a": ["1", "0", "yes"], "b": ["0", "2", "1"]})
    with pytest.raises(DataError, match=r"'b' .*'2' in data row 2 \(file line 3"):
        _load(tmp_path, {"train": (".csv", frame)}, label_columns="a,b")
    with pytest.raises(DataError, match="no column 'c'"):
        _load(tmp_path, {"train": (".csv", frame)}, label_columns="a,c")


def test_a_label_only_in_the_test_file_is_refused_with_its_rows(tmp_path):
    train = pd.DataFrame({"body": TEXTS, "tags": [json.dumps(s) for s in SETS]})
    test = pd.DataFrame({"body": TEXTS[:3], "tags": ['["sports"]', '["weather"]', '["weather", "science"]']})
    with pytest.raises(DataError) as e:
        _load(tmp_path, {"train": (".csv", train), "valid": (".csv", train), "test": (".csv", test)},
              label_column="tags")
    assert "test.csv" in str(e.value) and "'weather'" in str(e.value) and "data rows 2, 3" in str(e.value)


def test_the_builtin_data_are_the_entity_types_of_the_ner_split():
    from tfbert.data.tagged import entity_types, load_ner_dataset

    data, ner = load_multilabel_dataset(seed=0), load_ner_dataset(seed=0)
    assert data.test["text"].tolist() == [" ".join(s.tokens) for s in ner.test]
    assert data.test["labels"].tolist() == [entity_types(s.tags) for s in ner.test]
    assert data.labels == ner.types
    empty = int(data.train["labels"].map(len).eq(0).sum())
    assert 0 < empty < len(data.train) and f"{empty} of them with no label" in " ".join(data.notes)


def test_threshold_tuning_picks_the_f1_best_cut():
    # Label 0: positives at 0.9, 0.4, 0.35; negatives at 0.6, 0.3, 0.1. F1 = 2 TP / (predicted + 3) per cut:
    # >=0.9 2/4, >=0.6 2/5, >=0.4 4/6, >=0.35 6/7 (best), >=0.3 6/8, >=0.1 6/9.
    # Label 1: no positive -> the default 0.5. Label 2: the only positive has the highest probability.
    p = np.array([[0.9, 0.2, 0.8], [0.4, 0.1, 0.3], [0.35, 0.7, 0.2], [0.6, 0.2, 0.1], [0.3, 0.3, 0.6],
                  [0.1, 0.3, 0.5]], np.float32)
    y = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    t = tune_thresholds(y, p)
    assert 0.3 < t[0] <= 0.35 and t[1] == 0.5 and 0.6 < t[2] <= 0.8
    predicted = apply_thresholds(p, t)
    assert predicted[:, 0].tolist() == [1, 1, 1, 1, 0, 0] and predicted[:, 2].tolist() == [1, 0, 0, 0, 0, 0]
    # It is the best: no other cut of label 0 scores higher on these examples.
    from sklearn.metrics import f1_score
    best = f1_score(y[:, 0], predicted[:, 0])
    assert best == pytest.approx(6 / 7) and all(f1_score(y[:, 0], p[:, 0] >= c) <= best for c in p[:, 0])


def test_metrics_match_scikit_learn_and_hand_counts():
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    y_pred = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 0, 0]])
    m = multilabel_metrics(y_true, y_pred, LABELS)
    # Hand counts: politics TP 2 FP 1; science TP 1 FN 1; sports FP 1 FN 1 -> micro TP 3, FP 2, FN 2.
    assert m["per_label"]["politics"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_label"]["science"]["recall"] == 0.5 and m["per_label"]["sports"]["f1"] == 0.0
    assert m["micro_precision"] == pytest.approx(3 / 5) and m["micro_recall"] == pytest.approx(3 / 5)
    assert m["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    assert m["subset_accuracy"] == pytest.approx(2 / 5)  # rows 2 and 4 (both empty) are exact
    assert m["rows_without_label"] == 2 and m["rows_predicted_without_label"] == 1
    _, _, f, _ = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    assert [m["per_label"][n]["f1"] for n in LABELS] == pytest.approx(f.tolist())
    # A label absent from truth and predictions has no F1 and does not pull the macro average down.
    m3 = multilabel_metrics(np.c_[y_true, np.zeros(5, int)], np.c_[y_pred, np.zeros(5, int)], [*LABELS, "none"])
    assert m3["macro_f1"] == pytest.approx(m["macro_f1"])


def test_compiled_micro_f1_and_weighted_loss():
    import tensorflow as tf
    from sklearn.metrics import f1_score

    from tfbert.tasks.multilabel import MicroF1Score, positive_weights, sigmoid_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    y = (rng.random((40, 4)) < 0.3).astype(np.float32)
    metric = MicroF1Score()
    metric.update_state(y[:25], logits[:25])
    metric.update_state(y[25:], logits[25:])
    assert float(metric.result()) == pytest.approx(f1_score(y, logits > 0, average="micro"), abs=1e-6)

    w = positive_weights(np.array([[1, 0], [0, 0], [0, 0], [1, 0]], np.float32))
    assert w.tolist() == [1.0, 1.0] and positive_weights(np.array([[1], [0], [0], [0]], np.float32)).tolist() == [3.0]
    weights = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    got = sigmoid_loss(weights)(y, logits).numpy()
    sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
    want = -(weights * y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean(-1)
    assert got == pytest.approx(want, rel=1e-4)
    assert sigmoid_loss()(y, logits).numpy() == pytest.approx(
        tf.keras.losses.binary_crossentropy(y, logits, from_logits=True).numpy(), rel=1e-4)


def _tweets(n: int) -> list[str]:
    """Built-in tweets without U+FFFD (which the .tflite's tokenizer reads as [UNK]: tfbert.export.tflite)."""
    from tfbert.data.tweets import load_tweets
    return [t for t in load_tweets()[0]["text"].head(2 * n) if "\ufffd" not in t][:n]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_pair):
    """A tiny untrained multi-label model exported with thresholds that split its own probabilities."""
    import tensorflow as tf

    from tfbert.data.pipeline import TextPipeline, load_preprocess
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.export.multilabel import export_multilabel
    from tfbert.tasks.classification import build_classifier

    handles = resolve_encoder(str(tiny_pair), log=lambda *_: None)
    labels = ["Ünïcödé label", "b", "c", "d"]
    core = build_classifier(handles.encoder, len(labels), seed=1, pooling="mean")  # the task's default: spread answers
    core.get_layer("logits").set_weights([w * 40 for w in core.get_layer("logits").get_weights()])  # spread them
    texts = TEXTS + ["", "Zoë 👍🏽 日本語", "word " * 300]
    pipe = TextPipeline(load_preprocess(handles), 128)
    in_process = tf.sigmoid(core(pipe.encode(tf.constant(texts)), training=False)).numpy()
    thresholds = np.median(in_process, axis=0)
    base = tmp_path_factory.mktemp("export") / "multi"
    version = export_multilabel(core, handles.preprocess, labels, thresholds, base, inputs=InputSettings(128),
                                encoder_handle=handles.encoder, pooling="mean",
                                metadata={"settings": {"label_separator": "|"}},
                                check_texts=_tweets(100), tflite={}, log=lambda *_: None)
    return version, labels, texts, in_process, thresholds


def test_served_label_sets_are_the_in_process_probabilities_thresholded(exported):
    from tfbert.serving import load

    version, labels, texts, in_process, thresholds = exported
    model = load(version)
    assert type(model).__name__ == "ExportedMultilabel" and model.labels == labels
    assert model.thresholds == pytest.approx(thresholds.tolist())
    assert (version / "assets" / "thresholds.txt").read_text().split() == [repr(float(t)) for t in
                                                                            thresholds.astype(np.float32)]
    assert (version / "assets" / "labels.txt").read_text(encoding="utf-8").splitlines() == labels
    meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
    assert meta["task"] == "multilabel" and meta["serving"] == "multilabel" and meta["labels"] == labels
    import tensorflow as tf
    raw = tf.saved_model.load(str(version))  # no variable the served graph never reads (the classifier's temperature)
    assert not hasattr(raw, "temperature")

    probs, sets = model.predict(texts, batch_size=4)  # several batches, each chunked and sorted inside
    assert np.abs(probs - in_process).max() < 1e-4
    expected = [[labels[j] for j in np.flatnonzero(row)] for row in apply_thresholds(probs, model.thresholds)]
    assert sets == expected
    assert 0 < sum(map(len, sets)) < len(texts) * len(labels)  # the thresholds do split: some in, some out
    records = model.predict_records(texts[:2])
    assert records[0]["labels"] == sets[0] and set(records[0]["probabilities"]) == set(labels)
    columns = model.prediction_columns(records)
    assert json.loads(columns["labels"][1]) == sets[1] and columns["p_b"][0] == pytest.approx(probs[0, 1], abs=1e-6)


def test_evaluate_file_reads_the_training_format_and_refuses_unknown_labels(exported, tmp_path):
    from tfbert.serving import load

    version, labels, texts, _, _ = exported
    model = load(version)
    texts = [t for t in texts if t]
    _, predicted = model.predict(texts)
    path = tmp_path / "test.csv"
    write_table(path, pd.DataFrame({"t": texts + [""], "y": ["|".join(s) for s in predicted] + ["b"]}))
    notes = []
    metrics, report = model.evaluate_file(path, text_column="t", label_column="y", note=notes.append)
    assert metrics["n"] == len(texts) and metrics["subset_accuracy"] == 1.0 and "micro_f1=" in report
    assert any("skipped 1 of" in n for n in notes)
    write_table(path, pd.DataFrame({"t": texts[:2], "y": ["b", "b|zzz"]}))
    with pytest.raises(DataError, match=r"'zzz' \(1 rows: data row 2"):
        model.evaluate_file(path, text_column="t", label_column="y")


def test_the_tflite_answers_the_served_probabilities_and_label_sets(exported):
    """--tflite on a multi-label export: sigmoid probabilities and, per label, whether it reaches its threshold, in
    a process with only tensorflow and tensorflow_text (tests/test_tflite.py's RUN)."""
    from conftest import run_tflite
    version, labels, texts, in_process, thresholds = exported
    meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
    assert meta["tflite"]["written"] and meta["tflite"]["label_agreement"] >= 0.9, meta["tflite"]
    got = run_tflite(version / meta["tflite"]["file"], texts)
    probabilities = np.array(got["probabilities"])
    assert probabilities.shape == in_process.shape and np.abs(probabilities - in_process).mean() < 0.02
    assert np.array(got["chosen"]).tolist() == (probabilities >= thresholds.astype(np.float32)).astype(int).tolist()
    assert got["num_labels"] == np.array(got["chosen"]).sum(1).tolist()
    assert 0 < np.array(got["chosen"]).mean() < 1  # the thresholds split the answers: the check means something
