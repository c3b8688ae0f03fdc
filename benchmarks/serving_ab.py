"""Shared by the serving benchmarks (serving_chunks.py, serving_graph.py, smaller_models.py): flags, the default
classifier on the tweet test split, interleaved timing of raw-string serving calls in one process, and the ONNX
Runtime peer run in its own venv on the same texts."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from measure import write_result

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def parser(doc: str, out_name: str, rounds: int) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--batches", type=int, default=16, help="batch-64 calls per round")
    ap.add_argument("--singles", type=int, default=64, help="batch-1 calls per round")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--out", default=str(HERE / "results" / out_name))
    return ap


def peer_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--peer-python", help="the ONNX Runtime peer's venv python (benchmarks/reference/onnx_peer.py); "
                                          "default: no peer")
    ap.add_argument("--peer-model-dir", help="the peer's Hugging Face checkpoint (default: the embedded MiniLM's)")


def onnx_peer(a, texts: list[str], work: Path) -> dict:
    """benchmarks/reference/onnx_peer.py in its venv on the same test texts (one per line), after tfbert's serving."""
    import json
    import subprocess
    if a.peer_model_dir is None:
        from tfbert.encoders.checkpoint import resolve_source
        from tfbert.encoders.registry import EMBEDDED
        a.peer_model_dir = str(resolve_source(EMBEDDED["minilm-l6"]))
    work.mkdir(parents=True, exist_ok=True)
    texts_file, out = work / "test_texts.txt", work / "onnx_peer.json"
    texts_file.write_text("\n".join(" ".join(t.split()) for t in texts), encoding="utf-8")
    cmd = [a.peer_python, str(HERE / "reference" / "onnx_peer.py"), "--model-dir", a.peer_model_dir, "--texts-file",
           str(texts_file), "--rounds", str(a.rounds), "--batches", str(a.batches), "--singles", str(a.singles),
           "--work", str(work / "onnx"), "--out", str(out)]
    print("peer: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE / "reference")
    return json.loads(out.read_text())


def default_classifier(precision: str):
    """(data, encoder handles, the default classifier with an untrained head: speed does not depend on it)."""
    from tfbert.data.classification import load_dataset
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.tasks.classification import build_classifier
    data = load_dataset(None, None, None, seed=0)
    handles = resolve_encoder("minilm-l6", precision=precision)
    return data, handles, build_classifier(handles.encoder, len(data.labels))


def requests(texts: list[str], a: argparse.Namespace):
    """Batch-64 requests over the texts in file order, and batch-1 requests."""
    import tensorflow as tf
    batches = [tf.constant(texts[i:i + 64]) for i in range(0, 64 * a.batches, 64)]
    return batches, [tf.constant([t]) for t in texts[:a.singles]]


def interleaved(serves: dict, batches, singles, rounds: int, single_ms: dict | None = None):
    """Seconds per round for every serve(text) -> outputs: all batch-64 requests, all batch-1 requests.

    Every serve is warmed up on every shape first (tracing, oneDNN primitives); rounds alternate the order.
    `single_ms`, if given, receives every serve's batch-1 calls one by one in milliseconds (for p50/p99)."""
    def timed(serve, inputs, calls=None):
        t = time.perf_counter()
        for x in inputs:
            start = time.perf_counter()
            serve(x)["label_id"].numpy()
            if calls is not None:
                calls.append(1000 * (time.perf_counter() - start))
        return time.perf_counter() - t

    for serve in serves.values():
        timed(serve, batches + singles)
    b64, b1 = {k: [] for k in serves}, {k: [] for k in serves}
    for r in range(rounds):
        for k in (list(serves) if r % 2 == 0 else list(serves)[::-1]):
            b64[k].append(timed(serves[k], batches))
            b1[k].append(timed(serves[k], singles, None if single_ms is None else single_ms.setdefault(k, [])))
    return b64, b1


def write(result: dict, out: str) -> None:
    write_result(out, result)
