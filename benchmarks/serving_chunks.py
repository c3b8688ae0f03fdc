#!/usr/bin/env python
"""Serving signature: the whole request padded as one batch vs length-sorted chunks (tfbert.export.SERVE_CHUNK).

    python benchmarks/serving_chunks.py [--chunks 0 8 16 32] [--rounds 5] [--precision auto]

Builds the default classifier (head untrained: speed does not depend on the weights), wraps it in
tfbert.export.ClassifierServer with each chunk size (0 = one batch) and times raw-string calls in ONE process,
interleaved round by round: batch 64 over the tweet test split in file order, and batch 1. Prints a table and
writes benchmarks/results/serving_chunks.json. Ratios within one run are what to quote.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 8, 16, 32])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=16, help="batch-64 calls per round")
    ap.add_argument("--singles", type=int, default=64, help="batch-1 calls per round")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--out", default=str(HERE / "results" / "serving_chunks.json"))
    a = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from tfbert.data_tables import load_dataset
    from tfbert.export import ClassifierServer
    from tfbert.model import build_classifier
    from tfbert.registry import resolve_encoder

    data = load_dataset(None, None, None, seed=0)
    handles = resolve_encoder("minilm-l6", precision=a.precision)
    model = build_classifier(handles.encoder, len(data.labels))
    texts = data.test["text"].tolist()
    batches = [tf.constant(texts[i:i + 64]) for i in range(0, 64 * a.batches, 64)]
    singles = [tf.constant([t]) for t in texts[:a.singles]]
    labels_file = Path(tempfile.mkdtemp()) / "labels.txt"
    labels_file.write_text("".join(f"{x}\n" for x in data.labels))
    servers = {c: ClassifierServer(handles.preprocess, model, data.labels, 128, labels_file, chunk=c) for c in a.chunks}
    reference = servers[a.chunks[0]].serve(batches[0])["probabilities"].numpy()
    max_diff = {c: float(np.abs(s.serve(batches[0])["probabilities"].numpy() - reference).max())
                for c, s in servers.items()}

    def timed(serve, inputs):
        t = time.perf_counter()
        for x in inputs:
            serve(x)["label_id"].numpy()
        return time.perf_counter() - t

    for s in servers.values():  # warm-up: trace, and every shape once (oneDNN primitives)
        timed(s.serve, batches + singles)
    b64 = {c: [] for c in servers}
    b1 = {c: [] for c in servers}
    for r in range(a.rounds):
        for c in (a.chunks if r % 2 == 0 else a.chunks[::-1]):
            b64[c].append(timed(servers[c].serve, batches))
            b1[c].append(timed(servers[c].serve, singles))
    n64 = sum(int(b.shape[0]) for b in batches)
    base = a.chunks[0]
    result = {"precision": handles.precision, "rounds": a.rounds, "batch64_calls": len(batches),
              "batch1_calls": len(singles), "chunks": {}}
    print(f"{'chunk':>6} {'b64 ex/s':>9} {'x chunk ' + str(base):>10} {'b1 ms':>7} {'max |dp|':>9}")
    for c in a.chunks:
        ex_s = n64 / min(b64[c])
        ms = 1000 * min(b1[c]) / len(singles)
        result["chunks"][str(c)] = {"b64_examples_per_sec": ex_s, "b64_speedup": min(b64[base]) / min(b64[c]),
                                    "b1_ms_mean": ms, "max_abs_prob_diff_vs_base": max_diff[c],
                                    "b64_seconds_per_round": b64[c], "b1_seconds_per_round": b1[c]}
        print(f"{c:>6} {ex_s:>9.1f} {min(b64[base]) / min(b64[c]):>10.2f} {ms:>7.2f} {max_diff[c]:>9.1e}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
