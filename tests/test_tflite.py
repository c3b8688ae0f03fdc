"""--tflite: an export's assets.extra/model.tflite (tokenizer and int8 model in one TFLite model) answers raw texts as
the SavedModel does, in a process with only tensorflow and tensorflow_text: classifier, regressor (multi-label: in
test_multilabel.py)."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (text ops for loading exports in this process)
from conftest import run_tflite

from tfbert.config import ConfigError
from tfbert.export.base import CHECK_TEXTS
from tfbert.export.classifier import ClassifierAnswers
from tfbert.export.regressor import RegressorAnswers
from tfbert.export.tflite import ExportedForward, LiteModel, vocabulary, write_tflite
from tfbert.tasks import spec
from tfbert.train import parse_config


def _tweets(n=None):
    from tfbert.data.tweets import load_tweets
    texts = load_tweets()[0]["text"].tolist()
    return texts if n is None else texts[:n]


def test_the_tflite_answers_as_the_savedmodel_in_a_process_with_only_tensorflow_text(trained, trained_export):
    _, summary = trained
    meta = json.loads((trained_export / "assets.extra" / "tfbert.json").read_text())
    facts = meta["tflite"]
    assert facts["written"] and facts["weights"] == "int8 (dynamic range)" and facts["label_agreement"] >= 0.9
    assert summary["tflite"] == facts  # metrics.json and the run summary carry the same facts
    path = trained_export / facts["file"]
    assert path.is_file() and facts["megabytes"] == round(path.stat().st_size / 2 ** 20, 2)

    # Real tweets without U+FFFD (the tokenizers differ on it, below), and the exporter's hostile texts.
    texts = [t for t in _tweets(300) if "\ufffd" not in t][:200] + CHECK_TEXTS
    lite = run_tflite(path, texts)
    served = tf.saved_model.load(str(trained_export)).signatures["serving_default"](text=tf.constant(texts))
    expected = served["probabilities"].numpy()
    got = np.array(lite["probabilities"])
    assert got.shape == expected.shape and np.allclose(got.sum(-1), 1, atol=1e-4)
    assert expected.std(0).max() > 0.05  # the model answers differently for different texts: the check means something
    # int8 weights move probabilities a little; the labels stay.
    assert np.abs(got - expected).mean() < 0.02, np.abs(got - expected).mean()
    assert (np.array(lite["label_id"]) == served["label_id"].numpy()).mean() >= 0.95


def test_the_tflite_tokenizer_matches_the_export_on_the_tweets_except_the_replacement_character(tiny_pair):
    """tensorflow_text's FastBertTokenizer (TFLite kernels) against the export's Hugging Face tokenization, on all
    37,200 built-in tweets: they differ where a tweet has U+FFFD (Hugging Face drops it, FastBertTokenizer keeps an
    [UNK]); with U+FFFD removed first, on 63 tweets (0.17%; private-use and unassigned code points)."""
    import tensorflow_hub as hub
    preprocess = hub.load(str(tiny_pair / "preprocess"))
    vocab, lower_case = vocabulary(preprocess)
    lite = LiteModel(None, vocab, lower_case, 128, ClassifierAnswers())
    texts = _tweets()
    differ = {"as they are": 0, "U+FFFD removed": 0}
    for start in range(0, len(texts), 1024):
        chunk = texts[start:start + 1024]
        ours = preprocess.tokenize(tf.constant(chunk)).merge_dims(-2, -1).to_list()
        for name, given in (("as they are", chunk), ("U+FFFD removed", [t.replace("\ufffd", "") for t in chunk])):
            theirs = lite.tokenizer.tokenize(tf.constant(given))
            theirs = (theirs.merge_dims(-2, -1) if theirs.ragged_rank > 1 else theirs).to_list()
            differ[name] += sum(a != b for a, b in zip(ours, theirs))
    assert differ["U+FFFD removed"] <= 0.005 * len(texts), differ
    assert differ["as they are"] > 0.05 * len(texts), differ  # the documented difference is real


def test_the_tflite_is_not_written_when_its_labels_disagree_or_it_cannot_be_converted(trained_export, tmp_path,
                                                                                       monkeypatch):
    """Below the agreement floor the file is removed, and a failed conversion writes none; the facts say why (the
    SavedModel is published anyway)."""
    import tfbert.export.tflite as tflite
    loaded = tf.saved_model.load(str(trained_export))
    texts = _tweets(40)
    expected = loaded.signatures["serving_default"](text=tf.constant(texts))["probabilities"].numpy()

    def broken(module):
        raise RuntimeError("op not supported\nmore detail")
    with monkeypatch.context() as m:
        m.setattr(tflite, "convert", broken)
        facts = write_tflite(tmp_path, ExportedForward(loaded.core), loaded.preprocess, max_seq_length=128,
                             expected=expected, texts=texts, answers=ClassifierAnswers(), log=lambda *_: None)
    assert facts == {"written": False, "reason": "the conversion failed: RuntimeError: op not supported"}
    assert not (tmp_path / "assets.extra").exists()

    monkeypatch.setattr(tflite, "MIN_LABEL_AGREEMENT", 1.01)  # no model reaches it
    facts = write_tflite(tmp_path, ExportedForward(loaded.core), loaded.preprocess, max_seq_length=128, expected=expected,
                         texts=texts, answers=ClassifierAnswers(), log=lambda *_: None)
    assert facts["written"] is False and "below 101%" in facts["reason"] and facts["check_texts"] == 40
    assert not (tmp_path / "assets.extra" / "model.tflite").exists()


@pytest.mark.parametrize("flags, given", [(["--text-b-column", "b"], "--text-b-column"),
                                          (["--long-texts", "head-tail"], "--long-texts head-tail")])
def test_tflite_refuses_pairs_and_other_cuts(flags, given):
    config = parse_config(["--task", "classify", "--train-file", "x.csv", "--tflite", *flags])
    with pytest.raises(ConfigError, match=f"--tflite with {given}"):
        spec("classify").check_config(config, log=lambda *_: None)


def test_the_tflite_graph_cuts_at_the_window_and_applies_temperature_and_threshold(trained_export):
    """A text longer than the window: the .tflite cuts it as training did (its first max_seq_length - 2 wordpieces),
    so the long text and its cut prefix get the same answer."""
    loaded = tf.saved_model.load(str(trained_export))
    vocab, lower_case = vocabulary(loaded.preprocess)
    lite = LiteModel(ExportedForward(loaded.core), vocab, lower_case, 16, ClassifierAnswers())
    words = "good bad awful great fine movie day service food never again really".split()
    long = " ".join(words * 3)
    prefix = " ".join((words * 3)[:14])  # 14 one-wordpiece words: the window of 16
    out = lite.serve(tf.constant([long, prefix, ""]))["probabilities"].numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)

    # A calibrated temperature and a tuned threshold are applied as the SavedModel applies them.
    tuned = LiteModel(ExportedForward(loaded.core), vocab, lower_case, 16, ClassifierAnswers(2.0, 0.3))
    got = tuned.serve(tf.constant([long, prefix, ""]))
    probabilities = tf.nn.softmax(np.log(out) / 2.0, axis=-1).numpy()  # softmax(logits / T), from softmax(logits)
    np.testing.assert_allclose(got["probabilities"].numpy(), probabilities, atol=1e-5)
    assert got["label_id"].numpy().tolist() == (probabilities[:, 1] >= 0.3).astype(int).tolist()


def test_a_regressor_tflite_scores_in_label_units_as_the_savedmodel(tiny_pair, tmp_path, monkeypatch):
    """--tflite on a regression export: the standardised output mapped back with the training labels' mean and
    std (3 and 2 here), as serving_default maps it."""
    from tfbert.config import RunConfig
    from tfbert.data.inputs import InputSettings
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.export.regressor import export_regressor
    from tfbert.tasks.regression import RegressionTask
    handles = resolve_encoder(str(tiny_pair), log=lambda *_: None)
    task = RegressionTask()
    config = RunConfig(task="regression", options={"pooling": "mean"}).with_task_defaults(task)
    model = task.build_model(handles.encoder, None, config)
    model.get_layer("logits").set_weights([w * 50 for w in model.get_layer("logits").get_weights()])  # spread them
    texts = [t for t in _tweets(120) if "\ufffd" not in t][:100]
    lite = {}
    version = export_regressor(model, handles.preprocess, tmp_path / "scores", mean=3.0, std=2.0,
                               inputs=InputSettings(64), encoder_handle=handles.encoder, pooling="mean",
                               check_texts=texts, tflite=lite, log=lambda *_: None)
    meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
    assert meta["tflite"] == lite and lite["written"] and "label_agreement" not in lite
    assert lite["mean_diff_in_std"] == pytest.approx(lite["mean_diff"] / 2.0)
    got = np.array(run_tflite(version / lite["file"], texts)["score"])
    served = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(texts))["score"].numpy()
    assert served.std() > 0.5  # the model answers differently for different texts: the check means something
    # int8 weights move the scores by a few thousandths of the labels' spread (0.005 against an std of 1.3 here)
    assert got.shape == served.shape and np.abs(got - served).mean() < 0.02 * served.std()

    # Beyond the bound on the mean difference (here: any difference) the file is not written, and the facts say why.
    import tfbert.export.tflite as tflite
    monkeypatch.setattr(tflite, "MAX_MEAN_SCORE_DIFF", 0.0)
    loaded = tf.saved_model.load(str(version))
    facts = write_tflite(tmp_path / "again", ExportedForward(loaded.core), loaded.preprocess, max_seq_length=64,
                         expected=served, texts=texts, answers=RegressorAnswers(3.0, 2.0), log=lambda *_: None)
    assert facts["written"] is False and facts["mean_diff_in_std"] > 0
    assert f"label standard deviations on average over {len(texts)} texts, above 0.0" in facts["reason"]
    assert not (tmp_path / "again" / "assets.extra" / "model.tflite").exists()


def test_tflite_is_refused_where_the_task_reads_pairs_or_cuts_otherwise():
    for task, flags, given in (("regression", ["--text-b-column", "b"], "--text-b-column"),
                               ("multilabel", ["--long-texts", "windows"], "--long-texts windows")):
        config = parse_config(["--task", task, "--train-file", "x.csv", "--tflite", *flags])
        with pytest.raises(ConfigError, match=f"--tflite with {given}"):
            spec(task).check_config(config.with_task_defaults(spec(task)), log=lambda *_: None)
    # multi-label ignores --text-b-column (a warning), so --tflite stands
    config = parse_config(["--task", "multilabel", "--tflite", "--text-b-column", "b"])
    spec("multilabel").check_config(config.with_task_defaults(spec("multilabel")), log=lambda *_: None)
