"""tfbert.serving and the evaluate/predict CLIs, against small fake exported models.

The fake models follow the export contract with a fixed rule instead of BERT: a text containing
"good" -> positive, else "bad" or "no" -> negative, else neutral, with probabilities from TABLE
("no" makes a None sent as the string "None" come out negative instead of neutral).
CLIs run in subprocesses where the process boundary matters (exit codes, stderr, __main__);
other cases call ``main(argv)`` in-process to keep TensorFlow start-ups few.
"""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfbert import evaluate, predict
from tfbert.data.tables import DataError
from tfbert.serving import load, read_labels, resolve_model_dir
from tfbert.serving.classifier import ExportedClassifier, label_ids

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
TABLE = [[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]]  # row = predicted label_id


def _save_fake(directory: Path, *, pairs=False, all_neutral=False):
    import tensorflow as tf

    def rule(text):
        low = tf.strings.lower(text)
        ids = tf.where(tf.strings.regex_full_match(low, ".*good.*"), tf.constant(2, tf.int64),
                       tf.where(tf.strings.regex_full_match(low, ".*(bad|no).*"), tf.constant(0, tf.int64),
                                tf.constant(1, tf.int64)))
        return tf.ones_like(ids) if all_neutral else ids

    def outputs(ids):
        return {"probabilities": tf.gather(tf.constant(TABLE, tf.float32), ids),
                "label": tf.gather(tf.constant(LABELS), ids), "label_id": ids}

    m = tf.Module()
    m.serve = tf.function(lambda text: outputs(rule(text)),
                          input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    signatures = {"serving_default": m.serve}
    if pairs:
        # Decided by text_b alone, so a test can tell the second text really reached the model.
        m.serve_pairs = tf.function(lambda text, text_b: outputs(rule(text_b)),
                                    input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                                     tf.TensorSpec([None], tf.string, name="text_b")])
        signatures["serving_pairs"] = m.serve_pairs
    tf.saved_model.save(m, str(directory), signatures=signatures)
    (directory / "assets").mkdir(exist_ok=True)
    (directory / "assets" / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return directory


def _save_fake_kind(directory: Path, kind: str):
    """A fake regressor (score: the text's length, of pairs the difference), embedder (similarity: 1 / (1 + the
    difference of the lengths)) or multi-label model (labels good and bad: the words the text contains)."""
    import tensorflow as tf

    length = lambda t: tf.cast(tf.strings.length(t), tf.float32)  # noqa: E731
    text = tf.TensorSpec([None], tf.string, name="text")
    text_b = tf.TensorSpec([None], tf.string, name="text_b")
    m = tf.Module()
    metadata = {"serving": kind}
    if kind == "regressor":
        m.serve = tf.function(lambda text: {"score": length(text)}, input_signature=[text])
        m.pairs = tf.function(lambda text, text_b: {"score": length(text) - length(text_b)},
                              input_signature=[text, text_b])
        signatures = {"serving_default": m.serve, "serving_pairs": m.pairs}
    elif kind == "embedder":
        m.serve = tf.function(lambda text: {"embedding": tf.one_hot(tf.strings.length(text) % 4, 4)},
                              input_signature=[text])
        m.pairs = tf.function(lambda text, text_b: {"similarity": 1 / (1 + tf.abs(length(text) - length(text_b)))},
                              input_signature=[text, text_b])
        signatures = {"serving_default": m.serve, "serving_similarity": m.pairs}
    else:
        def sets(text):
            good = tf.strings.regex_full_match(text, ".*good.*")
            bad = tf.strings.regex_full_match(text, ".*bad.*")
            first = tf.where(good, "good", tf.where(bad, "bad", ""))
            return {"probabilities": tf.cast(tf.stack([good, bad], 1), tf.float32),
                    "labels": tf.stack([first, tf.where(good & bad, "bad", "")], 1),
                    "num_labels": tf.cast(good, tf.int32) + tf.cast(bad, tf.int32)}

        m.serve = tf.function(sets, input_signature=[text])
        signatures = {"serving_default": m.serve}
        metadata.update(labels=["good", "bad"], thresholds=[0.5, 0.5])
    metadata["signatures"] = sorted(signatures)
    tf.saved_model.save(m, str(directory), signatures=signatures)
    (directory / "assets.extra").mkdir(exist_ok=True)
    (directory / "assets.extra" / "tfbert.json").write_text(json.dumps(metadata), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """<base>/fake/{1 (old: all neutral), 2 (the rule), 3 (incomplete), 10.tmp, runs}, <base>/pairs/1, <base>/empty,
    and <base>/{regressor,embedder,multilabel}/1."""
    base = tmp_path_factory.mktemp("saved_models")
    _save_fake(base / "fake" / "1", all_neutral=True)
    _save_fake(base / "fake" / "2")
    (base / "fake" / "3").mkdir()  # an export still being written: no saved_model.pb yet
    for junk in ("runs", "10.tmp"):  # non-integer names must be ignored even if they look loadable
        (base / "fake" / junk).mkdir()
        (base / "fake" / junk / "saved_model.pb").write_bytes(b"not a model")
    _save_fake(base / "pairs" / "1", pairs=True)
    for kind in ("regressor", "embedder", "multilabel"):
        _save_fake_kind(base / kind / "1", kind)
    (base / "empty" / "runs").mkdir(parents=True)
    return base


def _run(module, *args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", f"tfbert.{module}", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def _error_line(stderr: str) -> str:
    """The single `error:` line; TensorFlow's own start-up logging may precede it."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


# --------------------------------------------------------------------------- serving API


def test_resolve_model_dir(models, tmp_path):
    assert resolve_model_dir(models / "fake") == models / "fake" / "2"  # highest complete integer version
    assert resolve_model_dir(models / "fake" / "1") == models / "fake" / "1"
    assert resolve_model_dir(models / "fake" / "1" / "saved_model.pb") == models / "fake" / "1"
    with pytest.raises(FileNotFoundError, match=str(models / "empty")):
        resolve_model_dir(models / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope")
    (tmp_path / "m" / "4").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"version folders \(4\)"):
        resolve_model_dir(tmp_path / "m")
    assert read_labels(models / "fake") == LABELS


def test_predict_in_batches(models):
    clf = load(models / "fake")
    assert isinstance(clf, ExportedClassifier)
    assert clf.path == models / "fake" / "2" and clf.labels == LABELS and not clf.has_pairs
    texts = ["Good film", "bad day", None, "meh", "good and bad"]
    probs, ids, names = clf.predict(texts, batch_size=2)  # 3 calls, the last one a partial batch
    assert ids.tolist() == [2, 0, 1, 1, 2] and ids.dtype.name == "int64"
    assert names == ["positive", "negative", "neutral", "neutral", "positive"]
    assert probs.dtype.name == "float32" and np.allclose(probs, [TABLE[i] for i in [2, 0, 1, 1, 2]])
    probs_all, ids_all, _ = clf.predict(texts)
    assert (probs_all == probs).all() and (ids_all == ids).all()
    probs0, ids0, names0 = clf.predict([])
    assert probs0.shape == (0, 3) and ids0.shape == (0,) and names0 == []
    with pytest.raises(ValueError, match="serving_pairs"):
        clf.predict(["a"], ["b"])
    with pytest.raises(TypeError, match="list of strings"):
        clf.predict("good")
    with pytest.raises(ValueError, match="batch_size"):
        clf.predict(["a"], batch_size=0)


def test_predict_pairs(models):
    clf = ExportedClassifier(models / "pairs")
    assert clf.has_pairs
    assert clf.predict(["good", "good"], ["bad", "fine"], batch_size=1)[2] == ["negative", "neutral"]
    assert clf.predict(["good"])[2] == ["positive"]  # serving_default still serves single texts
    with pytest.raises(ValueError, match="1 items but texts_b has 2"):
        clf.predict(["a"], ["b", "c"])


def test_label_ids_compares_labels_as_strings():
    labels = ["0", "1", "2"]
    assert label_ids(pd.Series([2, 0, 1.0]), labels, "t.json", "y").tolist() == [2, 0, 1]
    assert label_ids(pd.Series(["2", " 1 "]), labels, "t.csv", "y").tolist() == [2, 1]
    with pytest.raises(DataError, match=r"does not know: '3', '7' \(3 rows: data rows 2, 3, 5\)"):
        label_ids(pd.Series([0, 7, 3, 1, 3]), labels, "t.json", "y")
    with pytest.raises(DataError, match="empty in 1 of 2 rows: data row 2"):
        label_ids(pd.Series(["0", " "]), labels, "t.csv", "y")


# --------------------------------------------------------------------------- CLIs in subprocesses


def test_predict_cli_texts(models):
    r = _run("predict", "--model", models / "fake", "good film", "bad day", "so so")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["text"], x["label"]) for x in rows] == [("good film", "positive"), ("bad day", "negative"),
                                                      ("so so", "neutral")]
    assert rows[0]["probabilities"] == {"negative": 0.05, "neutral": 0.15, "positive": 0.8}


def test_predict_cli_csv_to_csv(models, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n7,"good, really"\n8,bad\n9,\n', encoding="utf-8")
    out = tmp_path / "out" / "pred.csv"
    r = _run("predict", "--model", models / "fake", "--input-file", src, "--output", out)
    assert r.returncode == 0, r.stderr
    assert "wrote 3 rows" in r.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "text", "label", "p_negative", "p_neutral", "p_positive"]
    assert [(x["id"], x["text"], x["label"]) for x in rows] == [("7", "good, really", "positive"),
                                                               ("8", "bad", "negative"), ("9", "", "neutral")]
    assert [float(rows[1][f"p_{n}"]) for n in LABELS] == TABLE[0]


def test_evaluate_cli_metrics(models, tmp_path):
    # Predictions: positive, negative, positive (wrong), neutral, negative (wrong); the empty text is skipped.
    src = tmp_path / "test.csv"
    src.write_text("text,label\ngood film,positive\nbad day,negative\nso good,neutral\nplain,neutral\n"
                   "not bad at all,positive\n,negative\n", encoding="utf-8")
    out = tmp_path / "metrics.json"
    r = _run("evaluate", "--model", models / "fake", "--test-file", src, "--output", out)
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["n"] == 5 and m["accuracy"] == 0.6  # version 1 (all neutral) would give 0.4
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["model"] == str(models / "fake" / "2")
    assert "accuracy=0.6000" in r.stdout and "dropped 1 of 6 rows with empty text in 'text': data row 6" in r.stderr


def test_evaluate_cli_data_errors(models, tmp_path):
    # Both fail before TensorFlow is loaded, so these subprocesses are quick.
    src = tmp_path / "test.csv"
    src.write_text("sentence,label\ngood,positive\nok,mixed\n", encoding="utf-8")
    r = _run("evaluate", "--model", models / "fake", "--test-file", src)
    assert r.returncode == 2 and r.stdout == ""
    # Read as training reads its test files (tfbert.data.classification.read_labelled_table): named as they are.
    assert _error_line(r.stderr).startswith(f"error: {src.name}: no column 'text' (--text-column). "
                                            "Columns in the file: 'sentence', 'label'.")
    r = _run("evaluate", "--model", models / "fake", "--test-file", src, "--text-column", "sentence")
    assert r.returncode == 2
    line = _error_line(r.stderr)
    assert "labels the model does not know: 'mixed' (1 rows: data row 2 (file line 3" in line
    assert "'negative', 'neutral', 'positive'" in line


def test_predict_cli_model_without_versions(models):
    r = _run("predict", "--model", models / "empty", "good")
    assert r.returncode == 2 and r.stdout == ""
    assert str(models / "empty") in _error_line(r.stderr)


# --------------------------------------------------------------------------- CLIs in-process


def test_predict_main_pairs_to_jsonl_with_label_column(models, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"a": "good", "b": "bad", "label": "x", "n": 1}\n{"a": "bad", "b": "meh", "label": "y", "n": 2}\n',
                   encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert predict.main(["--model", str(models / "pairs"), "--input-file", str(src), "--text-column", "a",
                         "--text-b-column", "b", "--output", str(out), "--batch-size", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # The input's own 'label' column is kept; the predictions get the prefixed names.
    assert rows[0] == {"a": "good", "b": "bad", "label": "x", "n": 1, "predicted_label": "negative",
                       "predicted_p_negative": 0.8, "predicted_p_neutral": 0.15, "predicted_p_positive": 0.05}
    assert rows[1]["predicted_label"] == "neutral"
    assert "predicted_label" in capsys.readouterr().err


def test_cli_usage_errors_and_debug(models, capsys):
    assert predict.main(["--model", str(models / "fake")]) == 2  # neither texts nor --input-file
    assert predict.main(["--model", str(models / "fake"), "x", "--output", "out.xlsx"]) == 2
    err = capsys.readouterr().err
    assert "either TEXT arguments or --input-file" in err and "unsupported extension" in err
    with pytest.raises(FileNotFoundError):
        evaluate.main(["--model", str(models / "empty"), "--test-file", "t.csv", "--debug"])
    with pytest.raises(SystemExit) as e:
        predict.main(["--model", str(models / "fake"), "x", "--batch-size", "0"])
    assert e.value.code == 2


def test_a_damaged_export_is_named_in_one_line(models, tmp_path, capsys):
    import shutil
    broken = tmp_path / "broken" / "1"
    shutil.copytree(models / "fake" / "1", broken)
    data = next(broken.glob("variables/variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # a copy cut short
    assert predict.main(["--model", str(broken), "some text"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {broken}: the SavedModel cannot be loaded"), err


def test_a_text_argument_that_is_not_utf8_is_named_and_answered(models, capsys):
    bad = b"caf\xe9 ok".decode("utf-8", "surrogateescape")  # how Python hands a non-UTF-8 argv byte over
    assert predict.main(["--model", str(models / "fake"), "fine", bad]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["fine", "caf\ufffd ok"]
    assert "note: TEXT argument 2 is not valid UTF-8 (from character 3)" in err


def test_ctrl_c_and_a_full_disk_end_in_one_line_and_other_failures_keep_their_traceback(capsys):
    from tfbert.cli import run_cli
    parser = predict.build_parser()

    def raising(e):
        def run(args):
            raise e
        return run

    class ResourceExhaustedError(Exception):  # how TensorFlow's SaveV2 reports ENOSPC
        pass

    argv = ["--model", "m", "x"]
    assert run_cli(parser, raising(KeyboardInterrupt()), argv) == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C); nothing half-written was published\n"
    full = OSError(28, "No space left on device", "/data/out/runs/in-progress/ckpt")
    assert run_cli(parser, raising(full), argv, errors=(ValueError,)) == 2
    assert capsys.readouterr().err == ("error: no space left on device writing /data/out/runs/in-progress/ckpt; "
                                       "free space and run again\n")
    tf_full = ResourceExhaustedError("/data/out/1/variables/variables.data-00000-of-00001.tempstate123; No space "
                                     "left on device [Op:SaveV2]")
    assert run_cli(parser, raising(tf_full), argv, errors=(ValueError,)) == 2
    assert "no space left on device writing /data/out/1/variables/" in capsys.readouterr().err
    with pytest.raises(RuntimeError):  # not a user's error: the traceback stays
        run_cli(parser, raising(RuntimeError("bug")), argv, errors=(ValueError,))
    with pytest.raises(KeyboardInterrupt):
        run_cli(parser, raising(KeyboardInterrupt()), [*argv, "--debug"])


@pytest.mark.parametrize("module, flags", [
    (evaluate, ["--model", "--test-file", "--text-column", "--label-column", "--text-b-column", "--output",
                "--plots", "--head", "--batch-size", "--debug", "--quiet"]),
    (predict, ["--model", "--input-file", "--text-column", "--text-b-column", "--text-b", "--output",
               "--head", "--batch-size", "--debug", "--quiet"]),
])
def test_help_documents_every_flag_and_default(module, flags, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m {module.__name__}")
    parser = module.build_parser()
    documented = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert documented == set(flags)
    for action in parser._actions:
        if action.option_strings and action.option_strings[0] != "-h":
            assert "default" in action.help or "required" in action.help, action.option_strings


# --------------------------------------------------------------------------- progress and joined text columns


def test_predict_progress_goes_to_stderr_and_stdout_stays_json(models, tmp_path):
    src = tmp_path / "many.csv"
    pd.DataFrame({"text": [f"good {i}" if i % 2 else f"bad {i}" for i in range(300)]}).to_csv(src, index=False)
    r = _run("predict", "--model", models / "fake", "--input-file", src, "--batch-size", "8")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # every stdout line is an answer
    assert len(rows) == 300 and rows[1]["label"] == "positive"
    counts = [int(c) for c in re.findall(r"^predicting: (\d+)/300 texts", r.stderr, flags=re.M)]
    assert 5 <= len(counts) <= 11 and counts == sorted(counts) and counts[-1] == 300, r.stderr  # not per batch


def test_predict_keeps_one_output_row_per_input_line(models, tmp_path, capsys):
    """Blank and whitespace-only lines of a one-column CSV are empty texts with an answer each, not dropped rows
    (pandas' reader skips them by default; the outputs then no longer lined up with the inputs)."""
    src = tmp_path / "texts.csv"
    src.write_text("text\ngood\n   \n\nbad\n\t\n\n", encoding="utf-8")
    assert predict.main(["--model", str(models / "fake"), "--input-file", str(src)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["text"] for x in lines] == ["good", "   ", "", "bad", "\t"] and all("label" in x for x in lines)
    out = tmp_path / "pred.csv"
    assert predict.main(["--model", str(models / "fake"), "--input-file", str(src), "--output", str(out)]) == 0
    assert pd.read_csv(out, keep_default_na=False)["text"].tolist() == ["good", "   ", "", "bad", "\t"]


def test_small_inputs_and_quiet_show_no_progress(models, tmp_path, capsys):
    src = tmp_path / "many.csv"
    pd.DataFrame({"text": ["good"] * 40}).to_csv(src, index=False)
    assert predict.main(["--model", str(models / "fake"), "--input-file", str(src), "--batch-size", "20"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 40 and "predicting" not in err  # 2 batches: too small for progress
    assert predict.main(["--model", str(models / "fake"), "--input-file", str(src), "--batch-size", "4",
                         "--quiet"]) == 0
    assert "predicting" not in capsys.readouterr().err
    assert predict.main(["--model", str(models / "fake"), "--input-file", str(src), "--batch-size", "4"]) == 0
    assert "predicting: 40/40 texts (100%)" in capsys.readouterr().err


def _joined_file(tmp_path):
    """title and body (some empty) and their join written out as text; other_a, other_b and their join, other;
    the labels of every client's test."""
    title = ["good news", "bad day", "", "so so", "good", "plain", "", "bad"]
    body = ["fine", "", "good and bad", "bad luck", "", "x", "nothing", "good"]
    join = lambda parts: " | ".join(p for p in parts if p)  # noqa: E731  (empty parts are left out)
    df = pd.DataFrame({"title": title, "body": body, "text": [join(p) for p in zip(title, body)],
                       "other_a": body, "other_b": "b", "other": [join((a, "b")) for a in body],
                       "label": ["positive", "negative", "positive", "negative", "positive", "neutral", "neutral",
                                 "negative"],
                       "score": [12, 7, 15, 16, 3, 9, 8, 10],
                       "labels": ['["good"]', '["bad"]', '["good", "bad"]', '["bad"]', '["good"]', "[]", "[]", "[]"]})
    df.to_csv(tmp_path / "joined.csv", index=False)
    return tmp_path / "joined.csv"


@pytest.mark.parametrize("kind, columns", [
    ("fake", dict(label_column="label")),
    ("regressor", dict(label_column="score")),
    ("regressor", dict(label_column="score", text_b_column="other")),
    ("embedder", dict(label_column="score", text_b_column="other")),
    ("multilabel", dict(label_column="labels")),
])
def test_evaluate_joins_text_columns_as_a_pre_joined_column(models, tmp_path, kind, columns):
    src = _joined_file(tmp_path)
    model = load(models / kind)
    expected, _ = model.evaluate_file(src, text_column="text", **columns, note=lambda *_: None)
    if "text_b_column" in columns:
        columns["text_b_column"] = "other_a,other_b"
    got, _ = model.evaluate_file(src, text_column="title,body", **columns, note=lambda *_: None)
    assert got == expected
    if kind == "fake":  # and through the command line
        out = tmp_path / "metrics.json"
        assert evaluate.main(["--model", str(models / kind), "--test-file", str(src), "--text-column", "title,body",
                              "--output", str(out)]) == 0
        assert {k: v for k, v in json.loads(out.read_text()).items() if k not in ("model", "test_file")} == \
            json.loads(json.dumps(expected))


def test_evaluate_names_a_missing_joined_column_and_refuses_a_list_for_taggers(models, tmp_path):
    src = _joined_file(tmp_path)
    with pytest.raises(DataError, match=r"no column 'titel' \(did you mean 'title'\?\) \(--text-column\)"):
        load(models / "fake").evaluate_file(src, text_column="titel,body")
    from tfbert.serving.tagger import ExportedTagger

    with pytest.raises(ValueError, match="--text-column title,body: a tagger's test file is CoNLL or JSONL"):
        ExportedTagger(models / "fake", {"tags": ["O"]}).evaluate_file(src, text_column="title,body")
