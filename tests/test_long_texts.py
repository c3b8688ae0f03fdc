"""Long texts: the data notes' shares of what the window cuts, exact on texts of known wordpiece length; --long-texts
head-tail keeps the end that truncate cuts, identically in the training pipeline and in the exported graph."""
import dataclasses
import itertools
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
from tfbert.data.long_texts import LONG_TEXTS, head_length, round_robin_shares, window
from tfbert.data.pipeline import MAX_WINDOWS, TextPipeline, steps_per_epoch
from tfbert.encoders.bert import INPUT_KEYS


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    return hub.load(str(tiny_pair / "preprocess"))


@pytest.fixture(scope="module")
def ids(preprocess):
    """Wordpiece ids of the test words, with the piece counts the tests rely on asserted from the tokenizer."""
    pieces = {w: preprocess.tokenize(tf.constant([w])).flat_values.numpy().tolist()
              for w in ("hello", "tokenization", "alpha", "zebra")}
    assert [len(p) for p in pieces.values()] == [1, 2, 1, 1]
    special = preprocess.tokenize.get_special_tokens_dict()
    return {**{w: p[0] for w, p in pieces.items()}, "tokenization": pieces["tokenization"],
            "cls": int(special["start_of_sequence_id"]), "sep": int(special["end_of_segment_id"])}


def _words(n, word="hello"):
    return " ".join([word] * n)


def _frame(texts, texts_b=None):
    df = pd.DataFrame({"text": texts, "label_id": np.zeros(len(texts), np.int32)})
    return df if texts_b is None else df.assign(text_b=texts_b)


def _packed(pipe, df):
    """The encoder's input ids of every row, unpadded, as the evaluation batches deliver them (in order)."""
    out = []
    for x, _ in pipe.dataset(df, batch_size=4):
        ids, mask = x["input_word_ids"].numpy(), x["input_mask"].numpy()
        assert ids.shape[1] <= pipe.max_seq_length
        out += [row[m == 1].tolist() for row, m in zip(ids, mask)]
    return out


# --------------------------------------------------------------------------- how much is cut


def test_shares_cut_are_exact_for_single_texts(preprocess):
    # --max-seq-length 16: a window of 14 wordpieces. "tokenization" is 2 pieces: wordpieces are counted, not words.
    texts = [_words(5), _words(14), _words(15), _words(30), _words(7, "tokenization"), _words(8, "tokenization")]
    stats = TextPipeline(preprocess, 16).truncation(_frame(texts))
    assert stats == {"rows": 6, "rows_cut": 3, "rows_cut_share": 0.5, "wordpieces": 5 + 14 + 15 + 30 + 14 + 16,
                     "wordpieces_cut": 1 + 16 + 2, "wordpieces_cut_share": round(19 / 94, 6)}
    assert TextPipeline(preprocess, 16).truncation(texts) == stats  # a plain list of texts too


def test_shares_cut_are_exact_for_pairs(preprocess):
    # A pair shares max_seq_length - 3 = 13 wordpieces; what is lost is what exceeds it, however it is split.
    a, b = [_words(5), _words(10), "", _words(3, "tokenization")], [_words(5), _words(10), _words(20), _words(7)]
    stats = TextPipeline(preprocess, 16, has_pairs=True).truncation(_frame(a, b))
    assert stats["rows_cut"] == 2 and stats["rows_cut_share"] == 0.5
    assert stats["wordpieces"] == 10 + 20 + 20 + 13 and stats["wordpieces_cut"] == 7 + 7
    assert stats["wordpieces_cut_share"] == round(14 / 63, 6)


def test_the_report_names_its_splits_window_and_mode(preprocess):
    pipe = TextPipeline(preprocess, 16, long_texts="head-tail")
    report = pipe.truncation_report({"train": _frame([_words(20)]), "valid": _frame([_words(2)]), "test": _frame([])})
    assert report["long_texts"] == "head-tail" and report["window"] == 14
    assert [report["splits"][s]["rows_cut"] for s in ("train", "valid", "test")] == [1, 0, 0]
    assert report["splits"]["test"]["rows_cut_share"] == 0.0  # an empty split divides by nothing


def test_ner_counts_the_words_past_the_window(preprocess):
    from tfbert.tasks.ner import align, tagging_truncation
    # Window 6 (--max-seq-length 8). Sentence 1: 4 words, 8 pieces; "tokenization" (2 pieces) starts at 4 and 6:
    # the word at 6 is cut. Sentence 2: 7 one-piece words: the 7th is cut. Sentence 3 fits.
    sentences = [["hello", "hello", "hello", "hello", "tokenization", "tokenization"], ["hello"] * 7, ["hello"] * 3]
    aligned = align(preprocess, sentences, [[0] * len(s) for s in sentences])
    np.testing.assert_array_equal(aligned.word_starts, [0, 1, 2, 3, 4, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
    split = tagging_truncation({"train": aligned}, 8)["splits"]["train"]
    assert split == {"rows": 3, "rows_cut": 2, "rows_cut_share": round(2 / 3, 6), "wordpieces": 8 + 7 + 3,
                     "wordpieces_cut": 2 + 1, "wordpieces_cut_share": round(3 / 18, 6), "words": 16, "words_cut": 2,
                     "words_cut_share": 0.125}


# --------------------------------------------------------------------------- which wordpieces are kept


def test_round_robin_shares_are_what_the_packer_keeps(preprocess):
    for a, b, seq_length in itertools.product(range(9), range(9), (3, 4, 7, 10)):
        segments = [tf.RaggedTensor.from_row_lengths(tf.fill([n], 1000 + k), [n]) for k, n in enumerate((a, b))]
        packed = preprocess.bert_pack_inputs(segments, seq_length=seq_length)["input_word_ids"].numpy()[0]
        shares = round_robin_shares([tf.constant([a], tf.int64), tf.constant([b], tf.int64)],
                                    tf.constant(seq_length - 3, tf.int64))
        assert [int(s[0]) for s in shares] == [(packed == 1000).sum(), (packed == 1001).sum()], (a, b, seq_length)


def test_head_tail_keeps_the_end_that_truncate_cuts(preprocess, ids):
    long = "alpha " + _words(100) + " zebra"  # the deciding word only at the very end
    short = [_words(3), "", _words(30)]  # 30 pieces: exactly the window of --max-seq-length 32
    truncated = _packed(TextPipeline(preprocess, 32), _frame([long] + short))
    kept = _packed(TextPipeline(preprocess, 32, long_texts="head-tail"), _frame([long] + short))
    head = head_length(window(32, 1))
    assert head == 8  # a quarter of the 30-piece window: 7 pieces of the head after "alpha", 22 of the tail
    assert truncated[0] == [ids["cls"], ids["alpha"]] + [ids["hello"]] * 29 + [ids["sep"]]
    assert kept[0] == [ids["cls"], ids["alpha"]] + [ids["hello"]] * 28 + [ids["zebra"], ids["sep"]]
    assert kept[1:] == truncated[1:]  # texts that fit are unchanged
    assert head_length(510) == 128  # Sun et al. at 512: 128 head + 382 tail


def test_head_tail_cuts_each_segment_of_a_pair_to_its_share(preprocess, ids):
    a, b = "alpha " + _words(20) + " zebra", _words(3)  # window 13: b keeps its 3, a gets 10 (head 3, tail 7)
    pipe = TextPipeline(preprocess, 16, has_pairs=True, long_texts="head-tail")
    both_long = ("alpha " + _words(20) + " zebra", _words(20) + " zebra")  # 7 + 6: heads 2 + 2, tails 5 + 4
    got = _packed(pipe, _frame([a, both_long[0]], [b, both_long[1]]))
    cls, sep, h, z, al = ids["cls"], ids["sep"], ids["hello"], ids["zebra"], ids["alpha"]
    assert got[0] == [cls, al, h, h] + [h] * 6 + [z, sep] + [h] * 3 + [sep]
    assert got[1] == [cls, al, h] + [h] * 4 + [z, sep] + [h, h] + [h] * 3 + [z, sep]
    assert all(len(g) <= 16 for g in got)


def test_the_exported_classifier_cuts_as_training_did(preprocess, ids, tiny_pair, tmp_path):
    """A probe core labels a text by whether the "zebra" id reached the encoder at all; the export runs in a
    fresh process (tensorflow and tensorflow_text only), the SavedModel is then loaded and asked directly."""
    from tfbert.export.classifier import ClassifierServer, export_classifier

    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    seen = keras.layers.Lambda(lambda x: tf.reduce_any(tf.equal(x, ids["zebra"]), -1))(inputs["input_word_ids"])
    logits = keras.layers.Lambda(lambda s: tf.stack([tf.zeros_like(s, tf.float32), 20 * tf.cast(s, tf.float32)],
                                                    -1))(seen)
    probe = keras.Model(inputs, logits)
    texts = ["alpha " + _words(100) + " zebra", "zebra " + _words(3), _words(3)]
    served = {}
    for mode in ("truncate", "head-tail"):  # windows: test_windows_export_reads_the_end_of_a_5000_word_text
        version = export_classifier(probe, str(tiny_pair / "preprocess"), ["cut", "kept"], tmp_path / mode,
                                    inputs=InputSettings(32, mode), log=lambda *_: None)
        meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
        assert meta["long_texts"] == mode
        answer = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(texts))
        served[mode] = [x.decode() for x in answer["label"].numpy()]
        # The ids the server feeds its core are those of the training pipeline.
        server = ClassifierServer(str(tiny_pair / "preprocess"), probe, ["cut", "kept"], InputSettings(32, mode),
                                  version / "assets" / "labels.txt")
        fed = server.single.pack(server.single.segments(tf.constant(texts)))
        mask = fed["input_mask"].numpy()
        assert [r[m == 1].tolist() for r, m in zip(fed["input_word_ids"].numpy(), mask)] \
            == _packed(TextPipeline(preprocess, 32, long_texts=mode), _frame(texts))
    assert served == {"truncate": ["cut", "kept", "cut"], "head-tail": ["kept", "kept", "cut"]}


@pytest.mark.parametrize("kind", ["regressor", "multilabel"])
def test_the_regressor_and_multilabel_servers_cut_as_asked(preprocess, ids, tiny_pair, tmp_path, kind):
    from tfbert.export.multilabel import MultilabelServer
    from tfbert.export.regressor import RegressorServer

    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    seen = keras.layers.Lambda(lambda x: tf.cast(tf.reduce_any(tf.equal(x, ids["zebra"]), -1, keepdims=True),
                                                 tf.float32))(inputs["input_word_ids"])
    probe = keras.Model(inputs, keras.layers.Lambda(lambda s: 20 * s - 10)(seen))  # one output: +10 if seen
    texts = tf.constant(["alpha " + _words(100) + " zebra", _words(3)])
    got = {}
    for mode in ("truncate", "head-tail"):
        if kind == "regressor":
            server = RegressorServer(str(tiny_pair / "preprocess"), probe, 0.0, 1.0, InputSettings(32, mode))
            got[mode] = (server.serve(texts)["score"].numpy() > 0).tolist()
        else:
            labels = tmp_path / "labels.txt"
            labels.write_text("zebra\n")
            server = MultilabelServer(str(tiny_pair / "preprocess"), probe, ["zebra"], [0.5], InputSettings(32, mode),
                                      labels, labels)
            got[mode] = (server.serve(texts)["num_labels"].numpy() == 1).tolist()
    assert got == {"truncate": [False, False], "head-tail": [True, False]}


# --------------------------------------------------------------------------- the flag


def test_the_flag_offers_the_built_modes_and_ner_refuses_head_tail():
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    assert fields["long_texts"].metadata["choices"] == LONG_TEXTS and RunConfig().long_texts == "truncate"
    assert fields["max_windows"].default == MAX_WINDOWS  # config.py cannot import the pipeline (TF) to share it
    with pytest.raises(ConfigError, match="--long-texts must be one of truncate, head-tail, windows, not 'middle'"):
        RunConfig(long_texts="middle", epochs=1, learning_rate=1e-4, patience=1).check()
    from tfbert.tasks.ner import NerTask
    with pytest.raises(ConfigError, match="--long-texts head-tail: --task ner tags every word"):
        NerTask().check_config(RunConfig(task="ner", long_texts="head-tail"))
    NerTask().check_config(RunConfig(task="ner", long_texts="windows"))  # tests/test_ner_windows.py
    with pytest.raises(ValueError, match="long_texts must be one of truncate, head-tail, windows, not 'middle'"):
        TextPipeline(None, 16, long_texts="middle")


def test_the_note_says_how_much_is_cut_per_split():
    from tfbert.data.long_texts import truncation_note
    stats = {"rows": 37195, "rows_cut": 1, "rows_cut_share": 2.7e-05, "wordpieces": 1139517, "wordpieces_cut": 11,
             "wordpieces_cut_share": 1e-05}
    none = {**stats, "rows_cut": 0, "rows_cut_share": 0.0, "wordpieces_cut": 0, "wordpieces_cut_share": 0.0}
    tagged = {**stats, "words": 8, "words_cut": 2, "words_cut_share": 0.25}
    note = truncation_note({"long_texts": "head-tail", "window": 126, "splits": {"train": stats, "test": none}}, 128)
    assert note == ("Long texts (head-tail): the window is 126 wordpieces (--max-seq-length 128 less [CLS]/[SEP]): "
                    "train <0.1% of rows longer (1 of 37195), <0.1% of wordpieces cut; test 0.0% of rows longer "
                    "(0 of 37195), 0.0% of wordpieces cut.")
    note = truncation_note({"window": 126, "splits": {"train": tagged}}, 128, "sentences")
    assert "<0.1% of sentences longer" in note and "25.0% of words (2, tagged O)" in note



# --------------------------------------------------------------------------- --long-texts windows


def _probe(ids, absent: float = 0.0):
    """A core whose logits are [0, 20] for an input holding "zebra", [0, absent] otherwise."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    seen = keras.layers.Lambda(lambda x: tf.cast(tf.reduce_any(tf.equal(x, ids["zebra"]), -1), tf.float32))(
        inputs["input_word_ids"])
    logits = keras.layers.Lambda(lambda s: tf.stack([tf.zeros_like(s), 20 * s + absent * (1 - s)], -1))(seen)
    return keras.Model(inputs, logits)


def test_windows_make_every_window_an_example_with_its_texts_label(preprocess, ids):
    # --max-seq-length 16: windows of 14 advancing by 7 (the default, half). 5 pieces: 1 window; 30: 1 + ceil(16/7)
    # = 4, the last flush with the end; 14: 1; 60 capped at --max-windows 5 (the first 5: 7 * 4 + 14 = 42 read).
    texts = [_words(5), _words(29) + " zebra", _words(14), _words(59) + " zebra"]
    pipe = TextPipeline(preprocess, 16, long_texts="windows", max_windows=5)
    df = _frame(texts).assign(label_id=[0, 1, 2, 3])
    items = [0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3]
    assert pipe.window_items(df).tolist() == items and pipe.count(df) == 11
    h, z, cls, sep = ids["hello"], ids["zebra"], ids["cls"], ids["sep"]
    packed = _packed(pipe, df)
    assert packed[0] == [cls] + [h] * 5 + [sep] and packed[5] == [cls] + [h] * 14 + [sep]
    assert packed[1:5] == [[cls] + [h] * 14 + [sep]] * 3 + [[cls] + [h] * 13 + [z, sep]]  # the end is read
    assert all(z not in p for p in packed[6:])  # past the cap's reach (42 of 60 pieces): cut
    labels = np.concatenate([y.numpy() for _, y in pipe.dataset(df, 4)])
    assert labels.tolist() == items  # each window carries its text's label
    # Training batches: every window once per epoch, in exactly the planned number of batches.
    batches = [y.numpy() for _, y in pipe.dataset(df, 4, shuffle=True)]
    assert len(batches) == steps_per_epoch(pipe.count(df), 4) == 3
    assert sorted(np.concatenate(batches).tolist()) == items
    # Evaluation pools each text's windows (mean), as the export does; the report counts what the reach cuts.
    np.testing.assert_allclose(pipe.pool(np.array(items, np.float32)[:, None] + np.arange(11)[:, None], df)[:, 0],
                               [0, 1 + 2.5, 2 + 5, 3 + 8])
    report = pipe.truncation_report({"train": df})
    assert report["windows"] == {"size": 14, "stride": 7, "max_windows": 5, "reach": 42, "pooling": "mean"}
    assert report["splits"]["train"]["rows_cut"] == 1 and report["splits"]["train"]["wordpieces_cut"] == 60 - 42


def test_windows_export_reads_the_end_of_a_5000_word_text(preprocess, ids, tiny_pair, tmp_path):
    """The done-when of issue 16, provable with a probe core: a label-deciding word only at the end of a
    5,000-word text changes the exported model's answer under windows (asked in a fresh process with only
    tensorflow and tensorflow_text) and not under truncate (the same serving module in process: the exported
    truncate graph is checked at 32 above); a 20,000-word text is read through --max-windows windows only."""
    from tfbert.export.classifier import ClassifierServer, export_classifier
    from tfbert.export.publish import verify_in_fresh_process

    long, huge = _words(5000) + " zebra", _words(20000, "a") + " zebra"  # "a": the fresh process' argv is bounded
    texts = [long, "zebra " + _words(3), _words(3), huge]
    truncate = ClassifierServer(str(tiny_pair / "preprocess"), _probe(ids), ["cut", "kept"], InputSettings(128),
                                tmp_path / "labels.txt")
    assert [x.decode() for x in truncate.serve(tf.constant(texts))["label"].numpy()] == ["cut", "kept", "cut", "cut"]
    version = export_classifier(_probe(ids), str(tiny_pair / "preprocess"), ["cut", "kept"], tmp_path / "windows",
                                inputs=InputSettings(128, "windows"), log=lambda *_: None)
    meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
    served = {"windows": verify_in_fresh_process(version, {"serving_default": {"text": texts}})["serving_default"]}
    assert served["windows"]["label"] == ["kept", "kept", "cut", "cut"]
    assert meta["long_texts"] == "windows"
    assert meta["windows"] == {"size": 126, "stride": 63, "max_windows": MAX_WINDOWS, "reach": 126 + 127 * 63,
                               "pooling": "mean"}
    # Mean of the logits: 5,001 pieces make 1 + ceil(4875 / 63) = 79 windows, "zebra" only in the last.
    np.testing.assert_allclose(served["windows"]["probabilities"][0][1], 1 / (1 + np.exp(-20 / 79)), rtol=1e-5)
    np.testing.assert_allclose(served["windows"]["probabilities"][3], [0.5, 0.5])  # its end is past the reach
    server = ClassifierServer(str(tiny_pair / "preprocess"), _probe(ids), ["cut", "kept"], InputSettings(128, "windows"),
                              version / "assets" / "labels.txt")
    _, item = server.single.windows(server.single.segments(tf.constant(texts))[0])
    assert np.bincount(item.numpy()).tolist() == [79, 1, 1, MAX_WINDOWS]  # bounded


@pytest.mark.parametrize("kind", ["regressor", "multilabel"])
def test_the_regressor_and_multilabel_servers_pool_windows(preprocess, ids, tiny_pair, tmp_path, kind):
    from tfbert.export.multilabel import MultilabelServer
    from tfbert.export.regressor import RegressorServer

    two = _probe(ids, -1.0)  # one output: 20 where "zebra" is, else -1
    probe = keras.Model(two.inputs, keras.layers.Lambda(lambda x: x[:, 1:])(two.output))
    texts = tf.constant(["alpha " + _words(100) + " zebra", _words(3)])  # 102 pieces at 32: 1 + ceil(72/15) = 6
    if kind == "regressor":
        server = RegressorServer(str(tiny_pair / "preprocess"), probe, 1.0, 2.0, InputSettings(32, "windows"))
        np.testing.assert_allclose(server.serve(texts)["score"].numpy(), [1 + 2 * (20 - 5) / 6, 1 - 2], rtol=1e-6)
    else:
        labels = tmp_path / "labels.txt"
        labels.write_text("zebra\n")
        server = MultilabelServer(str(tiny_pair / "preprocess"), probe, ["zebra"], [0.5], InputSettings(32, "windows"),
                                  labels, labels)
        np.testing.assert_allclose(server.serve(texts)["probabilities"].numpy()[:, 0],
                                   [1 / (1 + np.exp(-15 / 6)), 1 / (1 + np.exp(1))], rtol=1e-6)


def test_windows_refuse_sentence_pairs_and_bad_settings(preprocess):
    from tfbert.tasks.classification import ClassificationTask
    from tfbert.tasks.regression import RegressionTask
    for task in (ClassificationTask(), RegressionTask()):
        with pytest.raises(ConfigError, match="--long-texts windows reads single texts; for sentence pairs"):
            task.check_config(RunConfig(task="classify", train_file="x.csv", text_b_column="b",
                                        long_texts="windows", options={"monitor": "spearman"}))
    with pytest.raises(ConfigError, match=r"--window-stride must be between 1 and the window.*\(30\), not 31"):
        RunConfig(max_seq_length=32, window_stride=31, epochs=1, learning_rate=1e-4, patience=1).check()
    with pytest.raises(ConfigError, match="--max-windows must be at least 1"):
        RunConfig(max_windows=0, epochs=1, learning_rate=1e-4, patience=1).check()
    with pytest.raises(ValueError, match="single texts, not sentence pairs"):
        TextPipeline(preprocess, 32, has_pairs=True, long_texts="windows")


def test_training_with_windows_plans_every_window_and_validates_per_text(tiny_pair, tmp_path):
    """tfbert.fit with --long-texts windows: the steps planned count windows, validation's macro-F1 is the pooled
    per-text one (valid = test here, so it must equal the test report's, which pools as the export does), and the
    export records the windows."""
    from tfbert.fit import fit
    from tfbert.train import parse_config
    rng = np.random.default_rng(0)
    # Long "zebra" texts, short "alpha" ones: window-level and text-level macro-F1 differ for nearly any model.
    rows = [("zebra " + _words(int(n)), "long") for n in rng.integers(20, 40, 12)] + \
           [("alpha " + _words(int(n)), "short") for n in rng.integers(2, 8, 12)]
    df = pd.DataFrame(rows, columns=["text", "label"]).sample(frac=1.0, random_state=0)
    df.iloc[:16].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[16:].to_csv(tmp_path / "eval.csv", index=False)
    summary = fit(parse_config([
        "--verbose", "0", "--task", "classify", "--train-file", str(tmp_path / "train.csv"), "--valid-file",
        str(tmp_path / "eval.csv"), "--test-file", str(tmp_path / "eval.csv"), "--encoder", str(tiny_pair),
        "--batch-size", "8", "--epochs", "1", "--min-steps", "0", "--max-seq-length", "16", "--long-texts", "windows",
        "--window-stride", "5", "--max-windows", "6", "--window-pooling", "mean", "--output-dir",
        str(tmp_path / "out")]), log=lambda *_: None)
    pieces = np.array([len(t.split()) for t in df.iloc[:16]["text"]])
    windows = np.minimum(6, 1 + -(-np.maximum(pieces - 14, 0) // 5))
    assert summary["planned_steps_per_epoch"] == -(-windows.sum() // 8) > 2  # more than the 2 batches of rows
    history = pd.read_csv(Path(summary["run_dir"]) / "history.csv")
    assert history["val_macro_f1"].iloc[0] == pytest.approx(summary["test"]["macro_f1"], abs=1e-6)
    settings = {"size": 14, "stride": 5, "max_windows": 6, "reach": 39, "pooling": "mean"}
    assert summary["truncation"]["windows"] == settings
    meta = json.loads((Path(summary["export"]) / "assets.extra" / "tfbert.json").read_text())
    assert meta["long_texts"] == "windows" and meta["windows"] == settings


def test_regression_and_multilabel_train_on_every_window_with_their_texts_targets(preprocess):
    from types import SimpleNamespace

    from tfbert.tasks.multilabel import multilabel_dataset
    from tfbert.tasks.regression import RegressionTask
    texts = [_words(5), _words(30), _words(14)]  # windows of 14 by 7: 1, 4, 1
    pipe = TextPipeline(preprocess, 16, long_texts="windows")
    targets = np.eye(3, dtype=np.float32)
    got = np.concatenate([y.numpy() for _, y in multilabel_dataset(pipe, texts, targets, 4)])
    np.testing.assert_array_equal(got, targets[[0, 1, 1, 1, 1, 2]])
    shuffled = [y.numpy() for _, y in multilabel_dataset(pipe, texts, targets, 4, shuffle=True)]
    assert len(shuffled) == 2 and sorted(np.concatenate(shuffled).argmax(-1).tolist()) == [0, 1, 1, 1, 1, 2]
    data = SimpleNamespace(mean=1.0, std=2.0)
    df = _frame(texts).assign(label=[1.0, 3.0, 5.0])
    scores = np.concatenate([y.numpy()[:, 0] for _, y in RegressionTask()._dataset(df, pipe, 4, data)])
    np.testing.assert_allclose(scores, [0, 1, 1, 1, 1, 2])  # (label - mean) / std of each window's text
