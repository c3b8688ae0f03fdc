"""Training and export end to end: tiny encoder on a real slice of tweets (fast), the real encoder (slow)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (text ops for loading exports in this process)

from tfbert.fit import fit as train
from tfbert.run_folder import LOCK_FILE
from tfbert.train import build_parser, parse_config

QUIET = dict(log=lambda *_: None)


def _args(*argv):
    return parse_config(["--verbose", "0", *argv])


def _load_in_fresh_process(path, texts, signature="serving_default", **extra):
    code = ("import json,sys,tensorflow as tf,tensorflow_text\n"
            "a=json.loads(sys.argv[1]); m=tf.saved_model.load(a['path'])\n"
            "r=m.signatures[a['sig']](**{k: tf.constant(v) for k, v in a['inputs'].items()})\n"
            "print(json.dumps({k: v.numpy().astype(str).tolist() if v.dtype==tf.string else v.numpy().tolist()"
            " for k, v in r.items()}))\n"
            "assert 'tfbert' not in sys.modules")
    inputs = {"text": texts, **extra}
    out = subprocess.run([sys.executable, "-c", code, json.dumps({"path": str(path), "sig": signature, "inputs": inputs})],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_lowers_the_loss_and_writes_the_run_folder(trained):
    out, summary = trained
    run = Path(summary["run_dir"])
    assert run == out / "moods" / "runs" / "1"
    history = pd.read_csv(run / "history.csv")
    assert len(history) == summary["epochs_run"] == 3  # 360 train rows / 16 = 23 steps: 3 epochs reach 60 steps
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] - 0.05
    for name in ("config.json", "metrics.json", "training_curves.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 100, name
    assert any((run / "logs").rglob("events.out.tfevents.*"))
    assert not (out / "moods" / "runs" / "in-progress").exists()
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert metrics["n"] == 45 and 0 <= metrics["accuracy"] <= 1
    # It learned something: its best validation macro-F1 is past the majority class's (no collapse warning).
    assert summary["constant_baseline"]["collapsed"] is False
    assert json.loads((run / "metrics.json").read_text())["class_weights"] == "none"  # auto: 150 rows per class
    assert json.loads((run / "run.json").read_text())["labels"] == ["negative", "neutral", "positive"]
    assert json.loads((run / "config.json").read_text())["label_column"] == "mood"
    # The export serves the forward-only graph, checked against the trained model on the check texts + 45 tests.
    serving = json.loads((run / "metrics.json").read_text())["serving_graph"]
    assert serving["graph"] == "inference" and serving["check_texts"] == 5 + 45 and serving["max_diff"] < 1e-3


def test_export_serves_raw_strings_in_a_process_without_tfbert(trained):
    out, summary = trained
    version = Path(summary["export"])
    assert version == out / "moods" / "1"
    assert (version / "assets" / "labels.txt").read_text().split() == ["negative", "neutral", "positive"]
    texts = ["I love this", "", "worst day ever 😡", "x" * 5000]
    res = _load_in_fresh_process(version, texts)
    probs = np.array(res["probabilities"])
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert set(res["label"]) <= {"negative", "neutral", "positive"}
    assert [["negative", "neutral", "positive"][i] for i in res["label_id"]] == res["label"]
    assert res["label_id"] == probs.argmax(1).tolist()


def test_second_export_gets_the_next_version_and_keeps_the_first(trained, tiny_pair, tweets_csv):
    out, summary = trained
    first = Path(summary["export"])
    stamp = (first / "saved_model.pb").stat().st_mtime_ns
    again = train(_args("--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet",
                        "--label-column", "mood", "--encoder", str(tiny_pair), "--epochs", "1", "--min-steps", "0",
                        "--max-train-examples", "64", "--output-dir", str(out), "--model-name", "moods"), **QUIET)
    assert Path(again["export"]) == out / "moods" / "2"
    assert (first / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (out / "moods").iterdir() if p.name != LOCK_FILE) == ["1", "2", "runs"]


def test_sentence_pairs_get_a_pairs_signature(tmp_path, tiny_pair):
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "car", "tree", "house", "river"]
    rows = [{"a": " ".join(rng.choice(words, 4)), "b": " ".join(rng.choice(words, 3)), "label": int(i % 2)}
            for i in range(120)]
    pd.DataFrame(rows).to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    summary = train(_args("--task", "classify", "--train-file", str(tmp_path / "pairs.jsonl"), "--text-column", "a",
                          "--text-b-column", "b", "--encoder", str(tiny_pair), "--epochs", "1", "--min-steps", "0",
                          "--batch-size", "16", "--output-dir", str(tmp_path / "out")), **QUIET)
    res = _load_in_fresh_process(summary["export"], ["cat dog", "tree"], "serving_pairs", text_b=["car", "river house"])
    assert np.array(res["probabilities"]).shape == (2, 2) and set(res["label"]) <= {"0", "1"}


@pytest.mark.parametrize("argv, message", [
    (["--learning-rate", "-1"], "--learning-rate must be positive"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--max-seq-length", "129"], "above the encoder's maximum of 128"),
    (["--task", "classify"], "--task classify needs --train-file"),
    (["--task", "classify", "--train-file", "missing.csv"], "missing.csv"),
])
def test_bad_flags_and_files_exit_2_with_a_clear_message(argv, message, tiny_pair, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tfbert.train", "--encoder", str(tiny_pair), "--output-dir",
                        str(tmp_path), *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not any(p.name.isdigit() for p in tmp_path.rglob("*"))


def test_help_documents_every_flag_with_its_default():
    text = " ".join(build_parser().format_help().split())
    for flag in ("--train-file", "--valid-file", "--test-file", "--text-column", "--label-column", "--text-b-column",
                 "--output-dir", "--model-name", "--seed", "--max-train-examples", "--epochs", "--batch-size",
                 "--learning-rate", "--max-seq-length", "--dropout", "--encoder", "--freeze-encoder",
                 "--class-weights", "--pooling", "--min-steps"):
        assert flag in text, flag
    assert "(default: 5e-05; ner: 0.0003; multilabel: 0.0001; qa: 0.0001; multitask: 0.0001)" in text and \
        "(default: saved_models)" in text  # as many tasks at 1e-4 as at 5e-5: the default task's rate comes first
    assert "(default: pooled; multilabel: mean)" in text  # an option shared by tasks with different defaults
    assert "(default: auto; ner: fp32; qa: fp32)" in text and "(default: on; ner: off)" in text
    assert "(default: None)" not in text


@pytest.mark.slow
def test_real_encoder_learns_sentiment_on_a_small_slice(tmp_path, tweets_csv):
    summary = train(_args("--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet",
                          "--label-column", "mood", "--epochs", "2", "--min-steps", "0", "--batch-size", "16",
                          "--output-dir", str(tmp_path)), **QUIET)
    test = summary["test"]
    majority = max(test["per_class"][c]["support"] for c in test["labels"]) / test["n"]
    assert test["accuracy"] > majority + 0.15, (test["accuracy"], majority)
    # The real bf16 encoder's export serves the inference graph, within bf16 rounding of the trained model.
    serving = summary["serving_graph"]
    assert serving["graph"] == "inference" and serving["max_diff"] < 0.05 and serving["label_agreement"] > 0.95, serving


def test_serving_sorts_by_length_in_chunks_and_answers_in_request_order(trained_export):
    """A request larger than SERVE_CHUNK, lengths shuffled: each answer equals that text served alone."""
    from tfbert.export.base import SERVE_CHUNK
    rng = np.random.default_rng(0)
    words = "good bad awful great fine movie day service food never again really".split()
    texts = [" ".join(rng.choice(words, n)) for n in rng.integers(1, 60, 2 * SERVE_CHUNK + 5)]
    model = tf.saved_model.load(str(trained_export))
    batch = model.signatures["serving_default"](text=tf.constant(texts))
    alone = [model.signatures["serving_default"](text=tf.constant([t])) for t in texts]
    np.testing.assert_allclose(batch["probabilities"].numpy(),
                               np.concatenate([a["probabilities"].numpy() for a in alone]), atol=1e-5)
    assert batch["label"].numpy().tolist() == [a["label"].numpy()[0] for a in alone]
    empty = model.signatures["serving_default"](text=tf.constant([], tf.string))  # zero chunks
    assert empty["probabilities"].shape == (0, 3) and empty["label"].shape == (0,)


def test_frozen_word_embeddings_stay_fixed_while_the_rest_trains(tiny_pair):
    import tf_keras as keras

    from tfbert.optim import make_optimizer
    from tfbert.tasks.classification import build_classifier
    model = build_classifier(str(tiny_pair / "encoder"), 2, freeze_word_embeddings=True)
    table = [v for v in model.weights if "word_embeddings" in v.name]
    assert len(table) == 1 and not any("word_embeddings" in v.name for v in model.trainable_variables)
    others = [v for v in model.trainable_variables if "layer_0" in v.name and "kernel" in v.name]
    assert others
    before = [v.numpy().copy() for v in table + others]
    model.compile(make_optimizer(1e-2, 10), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = {"input_word_ids": rng.integers(1000, 2000, (8, 12)).astype(np.int32),
         "input_mask": np.ones((8, 12), np.int32), "input_type_ids": np.zeros((8, 12), np.int32)}
    model.fit(x, np.arange(8) % 2, epochs=3, verbose=0)
    np.testing.assert_array_equal(table[0].numpy(), before[0])
    assert all(not np.allclose(v.numpy(), b) for v, b in zip(others, before[1:]))
