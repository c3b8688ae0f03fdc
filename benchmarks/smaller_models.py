#!/usr/bin/env python
"""Smaller encoders by layer dropping: what --encoder-layers costs in macro-F1 and gains in serving speed.

    python benchmarks/smaller_models.py [--layers 3] [--selections bottom spread] [--work DIR] [--out JSON]
                                        [--rounds 5] [--peer-python VENV/bin/python] [-- extra tfbert.train flags]

The teacher is `python -m tfbert.train --task sentiment` (the built-in tweets, the default recipe, every layer);
each student is the same command with --encoder-layers N --layer-selection S on the labels alone (layer dropping),
and with --teacher, the teacher's export, and the spread layers tfbert.distill picks (distillation; not with
--no-distill). Resumable: a variant
whose run folder in --work holds a finished run is not trained again. Then every export serves the tweets' test
texts side by side in one process, rounds alternating the order (after a warm-up on every shape): batches of 64
(examples/s, raw strings in, tokenization included) and single texts (p50/p99 latency per call). Writes --out with
each variant's test macro-F1 and accuracy, training time, export size on disk, speed, and its ratios to the
teacher, with the CPU. With --peer-python, the ONNX Runtime peer (benchmarks/reference/onnx_peer.py: the same
checkpoint, fp32 and int8) then serves the same texts, and the JSON holds issue 30's goal ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import serving_ab  # noqa: E402  (benchmarks/ is not a package)
from measure import percentile, split_extra, train_cli, write_result  # noqa: E402


def variants(layers: list[int], selections: list[str], teacher: str | None = None) -> dict[str, list[str]]:
    """name -> the tfbert.train flags that make it: the teacher first (the students' --teacher), then each layer
    count and selection dropped, and (with `teacher`, its export) distilled into the layers python -m tfbert.distill
    keeps by default (spread)."""
    out = {"teacher": []}
    for n in layers:
        for how in selections:
            out[f"{how}-{n}"] = ["--encoder-layers", str(n), "--layer-selection", how]
        if teacher:
            out[f"distilled-spread-{n}"] = ["--encoder-layers", str(n), "--layer-selection", "spread",
                                            "--teacher", teacher]
    return out


def trained(name: str, flags: list[str], extra: list[str], work: Path) -> dict:
    folder = work / name
    done = sorted(folder.glob("*/runs/*/metrics.json"))
    if done:
        import json
        print(f"{name}: reusing {done[-1]}")
        return json.loads(done[-1].read_text())
    print(f"{name}: training ({' '.join(flags) or 'every layer'})", flush=True)
    return train_cli(["--task", "sentiment", *flags, *extra], folder)


def size_mb(directory: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file()) / 2**20, 1)


def serving(exports: dict[str, str], texts: list[str], rounds: int, batches: int, singles: int) -> dict:
    """Per export: examples/s over batch-64 requests and per-call latency of single texts, interleaved."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the exports' ops)

    serves = {k: tf.saved_model.load(v).signatures["serving_default"] for k, v in exports.items()}
    b64 = [tf.constant(texts[i:i + 64]) for i in range(0, 64 * batches, 64)]
    b1 = [tf.constant([t]) for t in texts[:singles]]
    for serve in serves.values():  # warm-up: tracing, oneDNN primitives for every shape
        for x in b64 + b1:
            serve(text=x)
    seconds, latency = {k: [] for k in serves}, {k: [] for k in serves}
    for r in range(rounds):
        for k in (list(serves) if r % 2 == 0 else list(serves)[::-1]):
            t = time.perf_counter()
            for x in b64:
                serves[k](text=x)["label_id"].numpy()
            seconds[k].append(time.perf_counter() - t)
            for x in b1:
                t = time.perf_counter()
                serves[k](text=x)["label_id"].numpy()
                latency[k].append(1000 * (time.perf_counter() - t))
    n = 64 * len(b64)
    return {k: {"examples_per_s": round(n / statistics.median(seconds[k]), 1),
                "examples_per_s_rounds": [round(n / s, 1) for s in seconds[k]],
                "p50_ms": round(percentile(latency[k], 50), 2), "p99_ms": round(percentile(latency[k], 99), 2)}
            for k in serves}


def goal(rows: dict, peers: dict) -> dict:
    """Issue 30's two ratios: the fastest export within 1.0 macro-F1 point of the teacher against the fastest peer,
    in examples/s (at least 2x) and single-text p50 (at most 1x)."""
    eligible = {k: r for k, r in rows.items() if r["macro_f1_points_vs_teacher"] >= -1.0}
    name = max(eligible, key=lambda k: eligible[k]["examples_per_s"])
    best = max(peers, key=lambda k: peers[k]["examples_per_s"])
    return {"export": name, "peer": best,
            "examples_per_s_ratio": round(eligible[name]["examples_per_s"] / peers[best]["examples_per_s"], 2),
            "p50_ratio": round(eligible[name]["p50_ms"] / peers[best]["p50_ms"], 2)}


def main(argv=None) -> int:
    own, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="+", default=[3], help="--encoder-layers values (default: 3)")
    ap.add_argument("--selections", nargs="+", default=["bottom", "spread"], choices=["bottom", "spread"])
    ap.add_argument("--no-distill", action="store_true", help="layer dropping only: no students taught by the teacher")
    ap.add_argument("--work", default="/tmp/tfbert-smaller-models")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=16, help="batch-64 requests per round")
    ap.add_argument("--singles", type=int, default=64, help="single-text requests per round")
    serving_ab.peer_flags(ap)
    ap.add_argument("--out", default=str(HERE / "results" / "smaller_models.json"))
    a = ap.parse_args(own)

    from tfbert.data.classification import load_dataset

    work = Path(a.work)
    runs = {"teacher": trained("teacher", [], extra, work)}
    plan = variants(a.layers, a.selections, None if a.no_distill else runs["teacher"]["export"])
    runs.update({name: trained(name, flags, extra, work) for name, flags in plan.items() if name != "teacher"})
    test = load_dataset(None, None, None, seed=0).test["text"].astype(str).tolist()
    speed = serving({k: r["export"] for k, r in runs.items()}, test, a.rounds, a.batches, a.singles)
    teacher = runs["teacher"]
    rows = {}
    for name, r in runs.items():
        s = speed[name]
        rows[name] = {"flags": plan[name], "test_macro_f1": r["test"]["macro_f1"],
                      "test_accuracy": r["test"]["accuracy"], "epochs_run": r["epochs_run"],
                      "fit_seconds": r["fit_seconds"], "export_mb": size_mb(r["export"]), **s,
                      "macro_f1_points_vs_teacher": round(100 * (r["test"]["macro_f1"] - teacher["test"]["macro_f1"]),
                                                          2),
                      "speed_vs_teacher": round(s["examples_per_s"] / speed["teacher"]["examples_per_s"], 2),
                      "p50_vs_teacher": round(s["p50_ms"] / speed["teacher"]["p50_ms"], 2)}
        print(f"{name:>10}: macro-F1 {r['test']['macro_f1']:.4f} ({rows[name]['macro_f1_points_vs_teacher']:+.2f} "
              f"points), {s['examples_per_s']:.0f} examples/s ({rows[name]['speed_vs_teacher']:.2f}x), p50 "
              f"{s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, {rows[name]['export_mb']} MB, trained "
              f"{r['fit_seconds'] / 60:.1f} min")
    peer = serving_ab.onnx_peer(a, test, work) if a.peer_python else None
    write_result(a.out, {"what": "layer dropping (--encoder-layers) and distillation (--teacher) against the full "
                                 "encoder on the built-in tweets: test macro-F1 and raw-string serving speed, side by "
                                 "side in one process, then the ONNX Runtime peer",
                         "extra_train_flags": extra, "rounds": a.rounds, "batch_64_requests": a.batches,
                         "single_requests": a.singles, "variants": rows,
                         **({"peer": peer, "goal": goal(rows, peer["models"])} if peer else {})})
    return 0


if __name__ == "__main__":
    sys.exit(main())
