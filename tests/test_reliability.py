"""Reliability: crash and resume, safe exports, concurrent conversion, hostile serving input, repeatability."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_hf_checkpoint

from tfbert.data.inputs import InputSettings
from tfbert.run_folder import LOCK_FILE


def _train_cmd(tiny_pair, tweets_csv, out, *extra):
    return [sys.executable, "-m", "tfbert.train", "--task", "classify", "--train-file", str(tweets_csv),
            "--text-column", "tweet", "--label-column", "mood", "--encoder", str(tiny_pair), "--min-steps", "0",
            "--output-dir", str(out), "--model-name", "m", "--verbose", "2", *extra]


def _wait_for(predicate, proc, timeout=300):
    t = time.time()
    while not predicate():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.time() - t < timeout, "timed out"
        time.sleep(0.05)


def _versions(base: Path):
    return sorted(p.name for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


def test_sigkill_mid_epoch_2_resumes_and_exports_once(tmp_path, tiny_pair, tweets_csv):
    cmd = _train_cmd(tiny_pair, tweets_csv, tmp_path, "--epochs", "3", "--batch-size", "4")
    history = tmp_path / "m" / "runs" / "in-progress" / "history.csv"
    epochs_logged = lambda: len(history.read_text().splitlines()) - 1 if history.is_file() else 0  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: epochs_logged() >= 1, proc)  # epoch 1's backup is written before its history row
    time.sleep(0.2)  # into epoch 2: a few of its 90 steps (a whole epoch once took under 1 s on a quiet CPU)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert epochs_logged() == 1  # killed inside epoch 2 (read once the process is gone: no race)
    assert _versions(tmp_path / "m") == []
    # The plan is a fact a resume must share (like the data's SHA-256): 3 epochs of the batches the log announced.
    planned = json.loads((history.parent / "run.json").read_text())["planned_steps"]
    assert planned["total"] == 3 * planned["per_epoch"] and planned["per_epoch"] >= 90

    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the interrupted run" in again.stdout
    assert "Epoch 2/3" in again.stdout and "Epoch 1/3" not in again.stdout  # restarted at epoch 2, not 1
    rows = [json.loads("[" + line + "]")[0] for line in (tmp_path / "m" / "runs" / "1" / "history.csv")
            .read_text().splitlines()[1:]]
    assert rows == [0, 1, 2]
    assert _versions(tmp_path / "m") == ["1"]


def test_kill_during_export_leaves_no_version_and_rerun_exports_without_retraining(tmp_path, tiny_pair, tweets_csv):
    cmd = _train_cmd(tiny_pair, tweets_csv, tmp_path, "--epochs", "1", "--max-train-examples", "64")
    base = tmp_path / "m"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: base.is_dir() and any(p.name.startswith(".1.tmp-") for p in base.iterdir()), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _versions(base) == []  # only the hidden temp dir, which TF Serving ignores
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training already finished" in again.stdout and "Epoch 1/1" not in again.stdout
    assert _versions(base) == ["1"]
    assert not [p for p in base.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE], "stale temp dir left"


def test_a_failure_after_the_publish_is_finished_by_the_rerun_without_a_second_version(tmp_path, monkeypatch,
                                                                                       tiny_pair, tweets_csv):
    import tfbert.metrics.plots as plots
    from tfbert.fit import fit
    from tfbert.train import parse_config
    config = parse_config(["--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet",
                           "--label-column", "mood", "--encoder", str(tiny_pair), "--epochs", "1", "--min-steps", "0",
                           "--max-train-examples", "64", "--output-dir", str(tmp_path), "--model-name", "m",
                           "--verbose", "0"])
    base = tmp_path / "m"

    def disk_full(*_):
        raise OSError(28, "No space left on device", str(base / "runs" / "in-progress" / "training_curves.png"))
    monkeypatch.setattr(plots, "plot_history", disk_full)
    with pytest.raises(OSError, match="No space left"):
        fit(config, log=lambda *_: None)
    assert _versions(base) == ["1"] and (base / "runs" / "in-progress").is_dir()  # published, run folder unfinished
    monkeypatch.undo()
    lines = []
    summary = fit(config, log=lines.append)
    assert any("was published before the run stopped" in line for line in lines), lines
    assert summary["export"] == str(base / "1") and _versions(base) == ["1"]  # no duplicate version 2
    assert sorted(p.name for p in (base / "runs").iterdir()) == ["1"]
    run = json.loads((base / "runs" / "1" / "metrics.json").read_text())
    assert run["test"] == json.loads((base / "1" / "assets.extra" / "tfbert.json").read_text())["test_metrics"]
    assert (base / "runs" / "1" / "training_curves.png").is_file() and not (base / "runs" / "1" / "published.json").exists()


def test_export_that_loses_a_race_takes_the_next_version(tmp_path, monkeypatch, tiny_pair):
    import tfbert.export.classifier as export
    from tfbert.tasks.classification import build_classifier
    core = build_classifier(str(tiny_pair / "encoder"), 2)
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"someone else's")
    original = export._write

    def racing_write(tmp, *args):  # another exporter publishes version 2 while this one writes
        (tmp_path / "m" / "2").mkdir(exist_ok=True)
        (tmp_path / "m" / "2" / "saved_model.pb").write_bytes(b"the winner's")
        original(tmp, *args)
    monkeypatch.setattr(export, "_write", racing_write)
    # Non-ASCII labels also exercise the UTF-8 decoding of the fresh-process check.
    path = export.export_classifier(core, str(tiny_pair / "preprocess"), ["négatif", "положительный"], tmp_path / "m",
                                    inputs=InputSettings(32), log=lambda *_: None)
    assert path == tmp_path / "m" / "3"
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_bytes() == b"someone else's"
    assert (tmp_path / "m" / "2" / "saved_model.pb").read_bytes() == b"the winner's"


def test_two_processes_converting_at_once_both_get_a_valid_cache(tmp_path, checkpoint_dir):
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt")
    env = {**os.environ, "TFBERT_CACHE": str(tmp_path / "cache")}
    code = ("import sys; from tfbert.encoders.registry import resolve_encoder; h = resolve_encoder(sys.argv[1]);"
            "import tensorflow_hub as hub, tensorflow as tf; e = hub.load(h.encoder); p = hub.load(h.preprocess);"
            "print('OK', e(p(tf.constant(['x'])))['sequence_output'].shape)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(src)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "OK (1, 64, 8)" in out  # default packing: min(128, the checkpoint's 64 positions)
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")


HOSTILE = {"empty": [""], "whitespace": ["  \t\n  "], "100k chars": ["word " * 20000],
           "emoji and control": ["👍🏽 👨‍👩‍👧 \x00\x07\x1b[31m \u200b\ufeff"], "batch of 1000": ["fine"] * 1000,
           "batch of 1": ["x"]}


def test_export_answers_hostile_input_with_valid_probabilities(trained_export):
    model = tf.saved_model.load(str(trained_export))
    serve = model.signatures["serving_default"]
    cases = {**{k: tf.constant(v) for k, v in HOSTILE.items()},
             "invalid utf-8": tf.constant([b"\xff\xfe bad \xc3\x28 bytes", b"\x80"])}
    for name, texts in cases.items():
        out = serve(text=texts)
        probs = out["probabilities"].numpy()
        assert probs.shape == (texts.shape[0], 3), name
        assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(1), 1, atol=1e-5), name
        assert set(out["label"].numpy().astype(str)) <= {"negative", "neutral", "positive"}, name
    # Not a batch of texts: refused with the input's name and shape, not flattened into 4 answers or read as 1.
    for texts, shape in ((tf.constant([["a", "b"], ["c", "d"]]), "[2,2]"), (tf.constant("one text"), "[]")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"text {re.escape(shape)} is not compatible"):
            serve(text=texts)


def test_same_seed_gives_same_metrics_and_predictions(tmp_path, tiny_pair, tweets_csv):
    # Two processes at once (their imports and export checks overlap): a run must not depend on being alone.
    procs = {run: subprocess.Popen(_train_cmd(tiny_pair, tweets_csv, tmp_path / run, "--epochs", "2",
                                              "--learning-rate", "5e-3", "--pooling", "mean", "--seed", "7"),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for run in ("a", "b")}
    results = []
    for run, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
        metrics = json.loads((tmp_path / run / "m" / "runs" / "1" / "metrics.json").read_text())["test"]
        probs = tf.saved_model.load(str(tmp_path / run / "m" / "1")).signatures["serving_default"](
            text=tf.constant(["good", "bad", "meh", "what a day"]))["probabilities"].numpy()
        results.append((metrics, probs))
    (m1, p1), (m2, p2) = results
    assert abs(m1["accuracy"] - m2["accuracy"]) < 1e-6 and abs(m1["macro_f1"] - m2["macro_f1"]) < 1e-6
    assert m1["confusion_matrix"] == m2["confusion_matrix"]
    np.testing.assert_allclose(p1, p2, atol=1e-6)
