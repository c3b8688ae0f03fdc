"""--strategy: MirroredStrategy over two logical CPU devices trains the same model as one device; two worker
processes of `python -m tfbert.train --strategy multi_worker` on 127.0.0.1 train as one process, publish once and
resume after a worker is killed (slow)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tfbert
from tfbert.distribute import make_strategy

# Logical devices must be configured before TensorFlow starts: a fresh process runs both strategies.
SCRIPT = r"""
import json, sys
import pandas as pd
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfbert.config import make_config
from tfbert.fit import fit
encoder, data, out = sys.argv[1:4]
result = {}
for strategy in ("default", "mirrored"):  # the training loop alone: exporting is the same under both
    logs = []
    s = fit(make_config(dict(task="classify", train_file=data, text_column="tweet", label_column="mood",
                             encoder=encoder, strategy=strategy, dropout=0.0, batch_size=16, learning_rate=5e-3,
                             epochs=2, min_steps=0, max_train_examples=128, pooling="mean", verbose=0,
                             output_dir=out, model_name=strategy)), log=logs.append, export=False)
    history = pd.read_csv(str(s["run_dir"]) + "/history.csv")
    result[strategy] = {"loss": history["loss"].tolist(),
                        "replicas": [line for line in logs if line.startswith("strategy")]}
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def deterministic_pair(tmp_path_factory, checkpoint_dir):
    """The tiny encoder without dropout: the two runs can then be compared step for step."""
    from conftest import TINY

    from tfbert.encoders.convert import convert
    return convert(checkpoint_dir, tmp_path_factory.mktemp("enc") / "tiny-nodrop", random_init=True,
                   overrides={**TINY, "hidden_dropout": 0.0, "attention_dropout": 0.0}, log=lambda *_: None)


def test_mirrored_on_two_cpu_devices_matches_one_device(deterministic_pair, tweets_csv, tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(deterministic_pair), str(tweets_csv), str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.split("RESULT ", 1)[1])
    one, two = result["default"], result["mirrored"]
    assert two["replicas"] == ["strategy mirrored: 2 replica(s)"]
    assert len(one["loss"]) == len(two["loss"]) == 2
    assert one["loss"][1] < one["loss"][0]  # it trained
    # Same global batches and updates. Not bit-identical: float sums run in another order, and Keras averages the
    # replicas' means, which weights a partial batch split unevenly (5 = 3 + 2) a little differently. Measured:
    # 0.1-0.2 % apart, against 4-5 % of loss change from one epoch to the next.
    for a, b in zip(one["loss"], two["loss"]):
        assert abs(a - b) <= 5e-3 * a, (one["loss"], two["loss"])


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="--strategy must be one of"):
        make_strategy("parameter_server")


@pytest.mark.parametrize("tf_config, chief, index", [
    (None, True, None),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True, None),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False, 1),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True, None),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False, 0),
])
def test_only_the_chief_writes_where_a_server_looks(monkeypatch, tmp_path, tf_config, chief, index):
    from tfbert.distribute import is_chief, worker_index
    from tfbert.fit import output_base
    from tfbert.train import parse_config
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief and worker_index() == index
    a = parse_config(["--strategy", "multi_worker", "--output-dir", str(tmp_path)])
    base = tmp_path / "sentiment"
    assert output_base(a, log=lambda *_: None) == (base if chief else base / f"worker-{index}")
    assert output_base(a, chief=True) == base  # where every worker's checkpoint and backup callbacks point


# --------------------------------------------------------------------------- two worker processes on 127.0.0.1

# Every process: one intra-op thread, so the workers and the single-process reference share 2 cores without
# oversubscribing them (and compute alike); the single-process run gets the same setting.
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
WAIT = 420  # seconds a cluster may take before the test kills it: a hung worker fails the test instead of hanging it
# Training loss per epoch of the two-worker run against the single-process run: equal up to float32 summation
# order (the two half-batch gradients are summed by the all-reduce instead of inside one batch), measured ~1e-7
# relative after 24 steps; an epoch moves the loss by 0.5-2 %, and a wrong split (each worker on its own full
# batches, or both on the same data) changes the trajectory at that scale.
LOSS_RTOL = 1e-4


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tf_config=None):
    root = str(Path(tfbert.__file__).resolve().parents[1])  # this checkout, not an installed copy
    env = {**os.environ, **THREADS, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


class Processes:
    """`python -m tfbert.train` processes, each in its own process group (killed whole on failure)."""

    def __init__(self, directory):
        self.directory, self.procs, self.logs = directory, [], []

    def start(self, args, env, name):
        log = self.directory / f"{name}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, "-m", "tfbert.train", *args], stdout=f, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def cluster(self, args, name):
        """Two workers (worker 0 is the chief) on free ports of 127.0.0.1."""
        hosts = [f"127.0.0.1:{p}" for p in _free_ports(2)]
        return [self.start([*args, "--strategy", "multi_worker"],
                           _env({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}), f"{name}-{i}")
                for i in range(2)]

    def kill(self, proc):
        try:  # the whole group: also a fresh-process export check the worker started
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # nothing of it left
        proc.wait()

    def wait(self, procs, timeout=WAIT):
        deadline = time.time() + timeout
        try:
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            self.fail(f"still running after {timeout}s")
        for p in procs:
            if p.returncode != 0:
                self.fail(f"exit code {p.returncode}")

    def tail(self, log):
        return f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])

    def fail(self, why):
        self.kill_all()
        pytest.fail(why + "\n" + "\n".join(self.tail(log) for log in self.logs))

    def kill_all(self):
        for p in self.procs:
            self.kill(p)


def _history(run_dir):
    path = run_dir / "history.csv"
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else None


def _versions(base):
    return sorted(p.name for p in base.iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_two_workers_split_the_batch_match_one_process_and_resume_after_a_kill(deterministic_pair, tweets_csv,
                                                                              tmp_path):
    args = ["--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet", "--label-column", "mood",
            "--encoder", str(deterministic_pair), "--dropout", "0", "--batch-size", "16", "--learning-rate", "5e-3",
            "--epochs", "3", "--min-steps", "0", "--max-train-examples", "128", "--pooling", "mean",
            "--max-seq-length", "32", "--verbose", "2", "--model-name", "moods"]
    run = Processes(tmp_path)
    try:
        # Three jobs at once: two workers that one SIGKILL will interrupt (first: the restart waits for them),
        # one process, and two workers.
        killed_base = tmp_path / "killed" / "moods"
        doomed = run.cluster([*args, "--output-dir", str(tmp_path / "killed")], "killed")
        single = run.start([*args, "--output-dir", str(tmp_path / "single")], _env(), "single")
        workers = run.cluster([*args, "--output-dir", str(tmp_path / "two")], "two")

        # Kill worker 1 once the chief's history holds epoch 1 (its backup is written before the history row).
        deadline = time.time() + WAIT
        while (h := _history(killed_base / "runs" / "in-progress")) is None or len(h) < 1:
            if time.time() > deadline or any(p.poll() is not None for p in doomed):
                run.fail("the cluster to be interrupted did not finish its first epoch")
            time.sleep(0.05)
        run.kill(doomed[1])
        # Without worker 1 the chief cannot finish a step (its collectives wait for worker 1 until TF's coordination
        # service gives up on it, ~30 s), so a job scheduler restarts the cluster whole: the chief is killed too.
        run.kill(doomed[0])
        in_progress = killed_base / "runs" / "in-progress"
        assert len(_history(in_progress)) == 1  # killed during epoch 2: it never finished
        assert (in_progress / "backup" / "chief" / "checkpoint").is_file() and not _versions(killed_base)
        restarted = run.cluster([*args, "--output-dir", str(tmp_path / "killed")], "restarted")

        run.wait([single, *workers, *restarted])
    finally:
        run.kill_all()
    logs = {log.stem: log.read_text(errors="replace") for log in run.logs}
    base, single_base = tmp_path / "two" / "moods", tmp_path / "single" / "moods"
    one, chief, other = (json.loads((b / "runs" / "1" / "metrics.json").read_text())
                         for b in (single_base, base, base / "worker-1"))

    # (a) The global batch is split: each worker gets half of a distributed batch (the first validation batch,
    # 2 x 16 = 32 examples) and takes all 128 / 16 = 8 steps of an epoch, as the single process does.
    assert one["replicas_in_sync"] == 1 and chief["replicas_in_sync"] == other["replicas_in_sync"] == 2
    assert chief["worker_valid_batch"] == other["worker_valid_batch"] == [16]
    assert all("epoch 3 step 8/8" in logs[name] for name in ("single", "two-0", "two-1"))

    # (b) The same loss curve as one process with the same flags (LOSS_RTOL above says why that tolerance).
    single_loss, two_loss = _history(single_base / "runs" / "1")["loss"], _history(base / "runs" / "1")["loss"]
    assert len(single_loss) == len(two_loss) == 3 and single_loss[2] < single_loss[0]  # it trained
    np.testing.assert_allclose(two_loss, single_loss, rtol=LOSS_RTOL)

    # (c) Only the chief publishes where a server looks (integer folders of the model's base); worker 1's copy of
    # the collective export and its run folder stay under worker-1/, which TF Serving ignores.
    shown = sorted(p.name for p in base.iterdir() if not p.name.startswith("."))  # not the run lock
    assert _versions(base) == ["1"] and shown == ["1", "runs", "worker-1"]
    assert f"exported {base / '1'}\n" in logs["two-0"] and f"exported {base / 'worker-1' / '1'}\n" in logs["two-1"]

    # (d) After the kill, both restarted workers resumed at epoch 2 from the chief's backup (a fresh start would
    # print "Epoch 1/3" and log epoch 0 twice) and the model was exported once.
    for name in ("restarted-0", "restarted-1"):
        assert "resuming the interrupted run" in logs[name]
        assert "Epoch 2/3" in logs[name] and "Epoch 1/3" not in logs[name], logs[name][-3000:]
    assert _history(killed_base / "runs" / "1")["epoch"].tolist() == [0, 1, 2]
    assert _versions(killed_base) == ["1"] and [p.name for p in (killed_base / "runs").iterdir()] == ["1"]
