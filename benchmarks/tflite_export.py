#!/usr/bin/env python
"""The --tflite export against the SavedModel it sits beside: raw texts in, tokenization included, both (issue 30).

    python benchmarks/tflite_export.py --export saved_models/sentiment/1 [--rounds 5] [--singles 64]

--export: a sentiment/classify export. Its assets.extra/model.tflite (written by `--tflite`) is measured; an
export trained without it gets one built into --work by the same code (tfbert.export.tflite, from the export's
float32 inference graph). Quality: macro-F1 of each on the whole built-in test split of the run's seed, and how many
labels the .tflite gives differently from the SavedModel. Speed, interleaved over --rounds in one process: batches
of 16 and of 64 test texts in file order (the SavedModel sorts each request by length in chunks of 16; the .tflite
pads a call to its longest text) and single texts (p50/p99 of each call). Size on disk: the SavedModel's folder
without assets.extra, and the .tflite. The SavedModel runs in TensorFlow, the .tflite in TFLite's interpreter with
tensorflow_text's kernels; both with 2 threads where they can be set. Throughput is the median round's.
With --peer-python (the peers' venv, benchmarks/reference/README.md), the ONNX Runtime peer
(benchmarks/reference/onnx_peer.py: the same checkpoint, fp32 and int8, raw strings through the Hugging Face fast
tokenizer) then serves the same test texts with the same rounds, and the JSON gets the goal's two ratios of issue
30: the .tflite's texts/s at batches of 64 over the best peer's, and the best peer's one-text p50 over the
.tflite's. Writes benchmarks/results/tflite_export.json.

--bound (after a run with the peer; times nothing else): what bounds the throughput ratio. It measures this CPU's
float32 matmul peak (benchmarks/phases.py's: a 4096 x 4096 matmul, best of 5) and counts the matmul FLOPs per
text of the timed batches (benchmarks/flops.py): padded to each batch of 64's longest, as the peer runs them, and
in the SavedModel's length-sorted chunks of 16 with its [CLS]-only last layer; then the GFLOP/s each side reached
and what 2x the peer would need. Adds "bound" to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from measure import checkout, percentile, write_result
from serving_ab import onnx_peer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def folder_mb(path: Path, skip: str = "assets.extra") -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and skip not in p.parts) / 2 ** 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="a sentiment/classify export")
    ap.add_argument("--work", default="/tmp/tfbert-tflite-export", help="where a missing .tflite is built")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=8, help="calls per batch size per round")
    ap.add_argument("--singles", type=int, default=64, help="single-text calls per round")
    ap.add_argument("--peer-python", help="the peers' venv python: also run the ONNX Runtime peer")
    ap.add_argument("--peer-model-dir", help="the peer's Hugging Face checkpoint (default: the embedded encoder's)")
    ap.add_argument("--bound", action="store_true", help="add the FLOP bound to --out's run (needs its peer rows)")
    ap.add_argument("--out", default=str(HERE / "results" / "tflite_export.json"))
    a = ap.parse_args(argv)
    if a.bound:
        return bound(Path(a.out))

    import statistics

    import numpy as np
    import tensorflow as tf
    import tensorflow_text as tf_text
    from sklearn.metrics import f1_score
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    from tfbert.data.classification import load_dataset
    from tfbert.export.classifier import ClassifierAnswers
    from tfbert.export.tflite import TFLITE_FILE, ExportedForward, write_tflite

    export = Path(a.export)
    meta = json.loads((export / "assets.extra" / "tfbert.json").read_text())
    loaded = tf.saved_model.load(str(export))
    serve = loaded.signatures["serving_default"]
    data = load_dataset(None, None, None, seed=meta["settings"]["seed"])
    texts, labels = data.test["text"].tolist(), meta["labels"]
    truth = np.array([labels.index(x) for x in data.test["label"]])
    saved = np.concatenate([serve(text=tf.constant(texts[i:i + 64]))["probabilities"].numpy()
                            for i in range(0, len(texts), 64)])

    lite_path = export / "assets.extra" / TFLITE_FILE
    built = None
    if not lite_path.is_file():
        if meta.get("serving_graph", {}).get("dtype") != "float32":
            sys.exit(f"{export}: no {TFLITE_FILE}, and no float32 inference graph to build one from")
        built = write_tflite(Path(a.work), ExportedForward(loaded.core), loaded.preprocess,
                             max_seq_length=meta["settings"]["max_seq_length"], expected=saved[:256],
                             texts=texts[:256], answers=ClassifierAnswers(meta["temperature"], meta["threshold"]))
        lite_path = Path(a.work) / "assets.extra" / TFLITE_FILE
    runner = InterpreterWithCustomOps(model_path=str(lite_path), num_threads=2,
                                      custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                                      ).get_signature_runner()
    calls = {"savedmodel": lambda b: serve(text=tf.constant(b))["probabilities"].numpy(),
             "tflite": lambda b: runner(text=np.array(b, dtype=object))["probabilities"]}
    lite = np.concatenate([calls["tflite"](texts[i:i + 64]) for i in range(0, len(texts), 64)])
    predictions = {"savedmodel": saved.argmax(-1), "tflite": lite.argmax(-1)}

    sizes = {16: [texts[i:i + 16] for i in range(0, 16 * a.batches, 16)],
             64: [texts[i:i + 64] for i in range(0, 64 * a.batches, 64)]}
    singles = texts[:a.singles]
    for c in calls.values():  # warm-up
        [c(b) for b in sizes[16][:2] + sizes[64][:2]]
        [c([t]) for t in singles[:8]]
    times = {k: {"b16": [], "b64": [], "single_ms": []} for k in calls}
    for r in range(a.rounds):
        for k in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            for size, batches in sizes.items():
                t = time.perf_counter()
                [calls[k](b) for b in batches]
                times[k][f"b{size}"].append(time.perf_counter() - t)
            for text in singles:
                t = time.perf_counter()
                calls[k]([text])
                times[k]["single_ms"].append(1000 * (time.perf_counter() - t))

    disk = {"savedmodel": folder_mb(export), "tflite": lite_path.stat().st_size / 2 ** 20}
    result = {"export": str(export), "precision": meta.get("serving_graph", {}).get("dtype"), "rounds": a.rounds,
              "test_texts": len(texts), "tflite_built_here": built, "models": {}}
    print(f"{'model':>11} {'macro-F1':>8} {'labels moved':>12} {'b16 texts/s':>11} {'x':>5} {'b64 texts/s':>11} "
          f"{'x':>5} {'single p50/p99 ms':>17} {'MB':>6}")
    for k in calls:
        t = times[k]
        n16, n64 = (sum(len(b) for b in sizes[s]) for s in (16, 64))
        row = {"macro_f1": float(f1_score(truth, predictions[k], average="macro")),
               "labels_differing_from_savedmodel": int((predictions[k] != predictions["savedmodel"]).sum()),
               "b16_texts_per_sec": n16 / statistics.median(t["b16"]),
               "b64_texts_per_sec": n64 / statistics.median(t["b64"]),
               "b16_speedup": statistics.median(times["savedmodel"]["b16"]) / statistics.median(t["b16"]),
               "b64_speedup": statistics.median(times["savedmodel"]["b64"]) / statistics.median(t["b64"]),
               "single_p50_ms": percentile(t["single_ms"], 50), "single_p99_ms": percentile(t["single_ms"], 99),
               "megabytes": round(disk[k], 1), "seconds_per_round": {s: t[s] for s in ("b16", "b64")}}
        result["models"][k] = row
        print(f"{k:>11} {row['macro_f1']:>8.4f} {row['labels_differing_from_savedmodel']:>12} "
              f"{row['b16_texts_per_sec']:>11.1f} {row['b16_speedup']:>5.2f} {row['b64_texts_per_sec']:>11.1f} "
              f"{row['b64_speedup']:>5.2f} {row['single_p50_ms']:>8.2f}/{row['single_p99_ms']:<8.2f} "
              f"{row['megabytes']:>6.1f}")
    if a.peer_python:
        peer = onnx_peer(a, texts, Path(a.work))
        result["peer"] = peer
        best = max(peer["models"].values(), key=lambda r: r["examples_per_s"])
        name = next(k for k, r in peer["models"].items() if r is best)
        lite_row = result["models"]["tflite"]
        result["goal"] = {"peer": name, "b64_texts_per_sec_ratio": lite_row["b64_texts_per_sec"] / best["examples_per_s"],
                          "b16_texts_per_sec_ratio": lite_row["b16_texts_per_sec"] / best["examples_per_s"],
                          "single_p50_ratio": best["p50_ms"] / lite_row["single_p50_ms"]}
        for k, r in peer["models"].items():
            print(f"{'onnx ' + k:>11} {'-':>8} {'-':>12} {'-':>11} {'':>5} {r['examples_per_s']:>11.1f} "
                  f"{'':>5} {r['p50_ms']:>8.2f}/{r['p99_ms']:<8.2f} {r['size_mb']:>6.1f}")
        g = result["goal"]
        print(f"goal (issue 30) against {name}: texts/s {g['b64_texts_per_sec_ratio']:.2f}x at batches of 64 "
              f"({g['b16_texts_per_sec_ratio']:.2f}x from batches of 16; needs 2x), one-text p50 "
              f"{g['single_p50_ratio']:.2f}x as fast (needs 1x)")
    write_result(a.out, result)
    return 0


def bound(out: Path) -> int:
    import datetime

    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    from flops import flops_per_example
    from phases import phase_peak

    from tfbert.data.classification import load_dataset
    from tfbert.encoders.convert import read_metadata
    from tfbert.encoders.registry import resolve_encoder

    result = json.loads(out.read_text())
    if "peer" not in result:
        sys.exit(f"{out}: no peer rows; run with --peer-python first")
    meta = json.loads((Path(result["export"]) / "assets.extra" / "tfbert.json").read_text())
    handles = resolve_encoder(meta["settings"]["encoder"], precision="fp32")
    cfg, labels = read_metadata(Path(handles.encoder).parent)["config"], len(meta["labels"])
    window = meta["settings"]["max_seq_length"]
    texts = load_dataset(None, None, None, seed=meta["settings"]["seed"]).test["text"].tolist()[:512]  # timed b64s
    pieces = hub.load(handles.preprocess).tokenize(tf.constant(texts)).merge_dims(-2, -1).row_lengths().numpy()
    lengths = np.minimum(pieces, window - 2) + 2
    padded = sorted_chunks = 0.0
    for i in range(0, len(lengths), 64):
        batch = np.sort(lengths[i:i + 64])
        padded += len(batch) * flops_per_example(int(batch.max()), cfg, labels)
        sorted_chunks += sum(len(batch[j:j + 16]) * flops_per_example(int(batch[j:j + 16].max()), cfg, labels,
                                                                       cls_only_last_layer=True)
                             for j in range(0, len(batch), 16))
    padded, sorted_chunks = padded / len(lengths), sorted_chunks / len(lengths)
    peak = phase_peak({})  # 4096 x 4096, best of 5
    peer = result["peer"]["models"][result["goal"]["peer"]]["examples_per_s"]
    saved = result["models"]["savedmodel"]["b64_texts_per_sec"]
    result["bound"] = {"fp32_matmul_peak_gflops": peak["fp32_gflops"], "peak_rates": peak["fp32_gflops_all"],
                       "gflop_per_text_padded_to_batch_longest": padded / 1e9,
                       "gflop_per_text_sorted_chunks": sorted_chunks / 1e9,
                       "savedmodel_b64_gflops": saved * sorted_chunks / 1e9,
                       "peer_b64_gflops": peer * padded / 1e9,
                       "gflops_for_2x_peer_in_sorted_chunks": 2 * peer * sorted_chunks / 1e9,
                       "date": datetime.date.today().isoformat(), "checkout": checkout()}
    for k, v in result["bound"].items():
        print(f"{k}: {v if isinstance(v, (str, dict)) else np.round(v, 3).tolist()}")
    write_result(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
