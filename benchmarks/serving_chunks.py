#!/usr/bin/env python
"""Serving signature: the whole request padded as one batch vs length-sorted chunks (tfbert.export.SERVE_CHUNK).

    python benchmarks/serving_chunks.py [--chunks 0 8 16 32] [--rounds 5] [--precision auto]

Builds the default classifier (head untrained: speed does not depend on the weights), wraps it in
tfbert.export.ClassifierServer with each chunk size (0 = one batch) and times raw-string calls in ONE process,
interleaved round by round: batch 64 over the tweet test split in file order, and batch 1. Prints a table and
writes benchmarks/results/serving_chunks.json. Ratios within one run are what to quote.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import serving_ab


def main(argv=None) -> int:
    ap = serving_ab.parser(__doc__, "serving_chunks.json", rounds=5)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 8, 16, 32])
    a = ap.parse_args(argv)

    import numpy as np

    from tfbert.data.inputs import InputSettings
    from tfbert.export.classifier import ClassifierServer

    data, handles, model = serving_ab.default_classifier(a.precision)
    batches, singles = serving_ab.requests(data.test["text"].tolist(), a)
    labels_file = Path(tempfile.mkdtemp()) / "labels.txt"
    labels_file.write_text("".join(f"{x}\n" for x in data.labels))
    servers = {c: ClassifierServer(handles.preprocess, model, data.labels, InputSettings(128), labels_file, chunk=c) for c in a.chunks}
    reference = servers[a.chunks[0]].serve(batches[0])["probabilities"].numpy()
    max_diff = {c: float(np.abs(s.serve(batches[0])["probabilities"].numpy() - reference).max())
                for c, s in servers.items()}
    b64, b1 = serving_ab.interleaved({c: s.serve for c, s in servers.items()}, batches, singles, a.rounds)
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
    serving_ab.write(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
