"""Publishing an export: the next integer version folder (TF Serving layout), written whole or not at all.

Every task's exporter builds a tf.Module with its serving signatures and calls `publish_next_version`, which
saves it into a hidden temp dir beside the version, adds the model's metadata (`assets.extra/tfbert.json`: task,
label names, settings, test metrics, library versions, so a model copied to a server keeps its provenance), runs
the exporter's check (which loads the model in a fresh process that imports only tensorflow and tensorflow_text)
and only then renames the folder into place. `save_server` also writes the check calls as TF Serving warm-up
requests (tfbert.export.warmup).
"""
from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import tensorflow as tf

from tfbert.export.warmup import write_warmup_requests
from tfbert.files import atomic_directory, write_json

METADATA_FILE = Path("assets.extra") / "tfbert.json"
_ASSET_SOURCES = ".asset-sources"
_VERSIONED = ("tensorflow", "tensorflow-text", "tensorflow-hub", "tf-keras", "tfbert")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def asset_source(directory: Path, name: str, lines: list[str]) -> Path:
    """Writes an asset (one item a line, UTF-8) where a tf.saved_model.Asset can point until `save_server` copies
    it into assets/."""
    path = directory / _ASSET_SOURCES / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def text_signatures(server: tf.Module, has_pairs: bool, check_texts: list[str]) -> tuple[dict, dict]:
    """The signatures of a server with serve(text) [and serve_pairs(text, text_b)], and the fresh-process calls
    that check them (pairs: the check texts against the same texts reversed)."""
    signatures = {"serving_default": server.serve.get_concrete_function()}
    calls = {"serving_default": {"text": check_texts}}
    if has_pairs:
        signatures["serving_pairs"] = server.serve_pairs.get_concrete_function()
        calls["serving_pairs"] = {"text": check_texts, "text_b": check_texts[::-1]}
    return signatures, calls


def save_server(directory: Path, server: tf.Module, signatures: dict, check_calls: dict[str, dict[str, list[str]]]) \
        -> None:
    """Saves `server` as the SavedModel in `directory`, the version folder itself (its assets copied in), with
    `check_calls` (signature -> input -> texts, what verify_in_fresh_process runs) as TF Serving warm-up requests
    for the model named after the folder above the version."""
    staging = directory / ".staging"
    tf.saved_model.save(server, str(staging), signatures=signatures)
    for item in staging.iterdir():
        item.rename(directory / item.name)
    staging.rmdir()
    shutil.rmtree(directory / _ASSET_SOURCES, ignore_errors=True)
    write_warmup_requests(directory, check_calls, directory.parent.name)


# Runs in a fresh interpreter: proves the export needs nothing but tensorflow and tensorflow_text. Beside each check
# call it runs the requests a server meets at its edges: the first row alone (as the warm-up records hold it) and
# batches whose texts are all empty (TF Serving fails a load on a failing warm-up record); every output must have
# the batch's rows (TF Serving's REST row format needs it). A [2, 2] tensor and a scalar must be refused.
# It imports TensorFlow first and then waits for its arguments on stdin, so that it can be started ahead
# (`prestart_fresh_process`) and import while the exporter builds and saves the model.
_CHECK_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf, tensorflow_text  # noqa: F401
assert not [m for m in sys.modules if m.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]
args = json.loads(sys.stdin.readline())
model = tf.saved_model.load(args["path"])
out = {}
for name, inputs in args["calls"].items():
    fn = model.signatures[name]
    edges = {"the first row alone": {k: v[:1] for k, v in inputs.items()},
             "one empty text": {k: [""] for k in inputs}, "two empty texts": {k: ["", ""] for k in inputs}}
    for what, shape in (("a [2, 2] tensor", [2, 2]), ("a scalar", [])):  # not a batch: refused, not flattened
        try:
            fn(**{k: tf.fill(shape, "a text") for k in inputs})
            sys.exit(f"signature {name} answers {what} instead of refusing it")
        except tf.errors.InvalidArgumentError:
            pass
    for what, call in {"the check texts": inputs, **edges}.items():
        try:
            res = fn(**{k: tf.constant(v, tf.string) for k, v in call.items()})
        except tf.errors.OpError as e:
            sys.exit(f"signature {name} fails on {what} {call}: {e.message.splitlines()[0]}")
        rows = len(next(iter(call.values())))
        short = {k: v.shape.as_list() for k, v in res.items() if v.shape.rank == 0 or v.shape[0] != rows}
        if short:
            sys.exit(f"signature {name} on {what}: outputs without one row per text ({rows}): {short}")
        if call is inputs:
            # Labels may be non-ASCII: decode as UTF-8 (numpy's astype(str) only handles ASCII).
            out[name] = {k: (np.char.decode(v.numpy().astype(bytes), "utf-8").tolist() if v.dtype == tf.string
                             else v.numpy().tolist()) for k, v in res.items()}
print("RESULT" + json.dumps(out))
"""


_prestarted: list[subprocess.Popen] = []


def fresh_process_env() -> dict[str, str]:
    """The environment of a process that loads an export as a user's would: without the TF_USE_LEGACY_KERAS that
    `import tfbert` sets (TensorFlow would then import tf_keras, which the check proves the export does not need)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _start_fresh_process(script: str = _CHECK_SCRIPT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=fresh_process_env())


def prestart_fresh_process() -> None:
    """Starts the next fresh-process check now, so that its TensorFlow import (seconds) overlaps the work before
    `verify_in_fresh_process`; the training loop calls it once training ends. Stopped at exit if never used."""
    if not _prestarted:
        _prestarted.append(_start_fresh_process())


@atexit.register
def _stop_prestarted() -> None:
    while _prestarted:
        proc = _prestarted.pop()
        proc.kill()
        proc.communicate()


def verify_in_fresh_process(path: Path, calls: dict[str, dict[str, list[str]]]) -> dict:
    """Runs `calls` (signature -> input -> texts) on the SavedModel at `path` in a fresh process (a prestarted one
    if there is one), with their edge requests (above); returns the calls' outputs as lists (signature -> output ->
    values)."""
    return _result(_prestarted.pop() if _prestarted else _start_fresh_process(),
                   {"path": str(path), "calls": calls}, "exported model")


def run_in_fresh_process(script: str, args: dict, what: str) -> dict:
    """Runs `script` (it reads `args` as one JSON line from stdin and prints "RESULT" + JSON) in a fresh process
    with fresh_process_env; returns the JSON. `what` names the model in the error when it fails."""
    return _result(_start_fresh_process(script), args, what)


def _result(proc: subprocess.Popen, args: dict, what: str) -> dict:
    try:
        out, err = proc.communicate(json.dumps(args) + "\n", timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed to load/run in a fresh process:\n{err[-3000:]}")
    return json.loads(lines[-1][len("RESULT"):])


def next_version(base: Path) -> int:
    """Above every version folder and every run folder (runs/<N>) under `base`: a version pruned from the server
    keeps its number, so a later export never takes it and its run folder again."""
    taken = [p.name for p in base.iterdir()] if base.is_dir() else []
    taken += [p.name for p in (base / "runs").iterdir()] if (base / "runs").is_dir() else []
    return max((int(n) for n in taken if n.isascii() and n.isdigit()), default=0) + 1


def publish_next_version(base: str | Path, write, metadata: dict | None = None, log=print, *,
                         fresh_check: bool = True) -> Path:
    """Calls `write(tmp_dir)`, adds `metadata` (with the library versions and time) as assets.extra/tfbert.json
    and publishes tmp_dir as the next free integer version under `base`. A metadata value may be a function
    `(tmp_dir, the other values) -> value` of the written model: the training run scores its test split on the
    export itself this way (tfbert.fit), before anything is published.

    Shared by every exporter: a version folder appears only whole (one rename); a version number taken by a
    concurrent export meanwhile makes this one write again under the next number.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    if fresh_check:  # `write` will verify the model in a fresh process: it imports TensorFlow while `write` saves
        prestart_fresh_process()
    while True:
        version = base / str(next_version(base))
        try:
            with atomic_directory(version) as tmp:
                write(tmp)
                write_metadata(tmp, of_written(metadata or {}, tmp))
            break
        except FileExistsError:
            continue  # another export took this version number meanwhile: take the next one
    log(f"exported {version}")
    return version


def of_written(metadata: dict, directory: Path) -> dict:
    """`metadata` with its function values called on the written model (`directory`) and the other values."""
    fixed = {k: v for k, v in metadata.items() if not callable(v)}
    return {k: v(directory, fixed) if callable(v) else v for k, v in metadata.items()}


def write_metadata(directory: Path, metadata: dict) -> None:
    write_json(directory / METADATA_FILE, {**metadata, "versions": library_versions(),
                                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
