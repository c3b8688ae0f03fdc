#!/usr/bin/env python
"""Reduced-precision serving of the encoder's forward pass: tfbert's inference graph in TensorFlow against the same
graph converted to TFLite: fp32, with dynamic-range int8 weights, and fully integer (issue 30, item 3).

    python benchmarks/reduced_precision.py --export saved_models/sentiment/1 [--rounds 5] [--singles 32]

--export: a sentiment/classify export of the embedded encoder that serves tfbert's forward-only inference graph
(metrics.json: serving_graph.graph "inference"). Its graph (`core.forward`: encoder inputs -> logits) is converted
with tf.lite.TFLiteConverter three times: as it is (fp32); with Optimize.DEFAULT (int8 weights, activations quantized
per call); and with Optimize.DEFAULT and a representative dataset (full-integer quantization: int8 weights and
int8 activations whose ranges are calibrated on --calibration-texts training texts, float only where an op has no
int8 kernel). Each runs in tf.lite.Interpreter with 2 threads. All three read the same token ids: tokenization is
not timed (the preprocess model's tensorflow_text ops have no TFLite kernels). Quality: macro-F1 of each on the
whole built-in test split (the run's seed-0 split), and how many labels differ from the TensorFlow graph's. Speed,
interleaved over --rounds: batches of 16 test texts in file order (each padded to its longest, as one chunk of
the export's length-sorted serving) and single texts. Prints a table and writes
benchmarks/results/reduced_precision.json. Ratios within one run are what to quote.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from measure import percentile, write_result

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="a classifier export serving the inference graph")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=16, help="batch-16 calls per round")
    ap.add_argument("--singles", type=int, default=32, help="batch-1 calls per round")
    ap.add_argument("--calibration-texts", type=int, default=256,
                    help="training texts that calibrate the full-integer model's activation ranges")
    ap.add_argument("--out", default=str(HERE / "results" / "reduced_precision.json"))
    a = ap.parse_args(argv)

    import json

    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    from sklearn.metrics import f1_score

    from tfbert.data.classification import load_dataset
    from tfbert.data.inputs import InputSettings
    from tfbert.encoders.registry import resolve_encoder

    meta = json.loads((Path(a.export) / "assets.extra" / "tfbert.json").read_text())
    if meta.get("serving_graph", {}).get("graph") != "inference":
        sys.exit(f"{a.export}: serves the {meta.get('serving_graph', {}).get('graph')} graph, not the inference graph")
    loaded = tf.saved_model.load(a.export)
    forward = loaded.core.forward.get_concrete_function()
    precision = {"float32": "fp32", "bfloat16": "bf16"}[meta["serving_graph"]["dtype"]]
    handles = resolve_encoder(meta["settings"]["encoder"], precision=precision)
    pipe = InputSettings(meta["settings"]["max_seq_length"]).pipeline(hub.load(handles.preprocess))
    data = load_dataset(None, None, None, seed=meta["settings"]["seed"])
    texts, labels = data.test["text"].tolist(), meta["labels"]
    truth = np.array([labels.index(x) for x in data.test["label"]])
    chunks = [pipe.encode(tf.constant(texts[i:i + 16])) for i in range(0, len(texts), 16)]
    timed_chunks, singles = chunks[:a.batches], [pipe.encode(tf.constant([t])) for t in texts[:a.singles]]

    train = data.train["text"].tolist()[:a.calibration_texts]
    calibration = [{k: v.numpy() for k, v in pipe.encode(tf.constant(train[i:i + 16])).items()}
                   for i in range(0, len(train), 16)]
    width = max(x["input_word_ids"].shape[1] for x in calibration)  # the calibrator needs one input shape
    calibration = [{k: np.pad(v, [(0, 0), (0, width - v.shape[1])]) for k, v in x.items()} for x in calibration]

    models, sizes = {}, {}
    for name, optimize, representative in (("tflite fp32", False, None), ("tflite int8 (dynamic range)", True, None),
                                           ("tflite int8 (full integer)", True, calibration)):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([forward], loaded.core)
        if optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative:
            converter.representative_dataset = lambda r=representative: iter(r)
        blob = converter.convert()
        sizes[name] = len(blob) / 2 ** 20
        runner = tf.lite.Interpreter(model_content=blob, num_threads=2).get_signature_runner()
        models[name] = lambda x, r=runner: next(iter(r(**{k: v.numpy() for k, v in x.items()}).values()))
    calls = {"tensorflow inference graph": lambda x: loaded.core.forward(x).numpy(), **models}

    result = {"export": a.export, "precision": handles.precision, "rounds": a.rounds, "test_texts": len(texts),
              "calibration_texts": len(train), "tflite_mb": sizes, "models": {}}
    predictions = {k: np.concatenate([c(x) for x in chunks]).argmax(-1) for k, c in calls.items()}
    reference = predictions["tensorflow inference graph"]
    times = {k: ([], [], []) for k in calls}
    for c in calls.values():  # warm-up: every shape once
        [c(x) for x in timed_chunks + singles]
    for r in range(a.rounds):
        for k in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            t = time.perf_counter()
            [calls[k](x) for x in timed_chunks]
            times[k][0].append(time.perf_counter() - t)
            t = time.perf_counter()
            for x in singles:
                start = time.perf_counter()
                calls[k](x)
                times[k][2].append(1000 * (time.perf_counter() - start))
            times[k][1].append(time.perf_counter() - t)
    n = sum(int(x["input_word_ids"].shape[0]) for x in timed_chunks)
    base = "tensorflow inference graph"
    print(f"{'forward pass (' + handles.precision + ')':>30} {'macro-F1':>8} {'labels moved':>12} {'b16 ex/s':>9} "
          f"{'x tf':>5} {'b1 p50/p99 ms':>14}")
    for k in calls:
        b16, b1, ms = times[k]
        row = {"macro_f1": float(f1_score(truth, predictions[k], average="macro")),
               "labels_differing_from_tensorflow": int((predictions[k] != reference).sum()),
               "b16_examples_per_sec": n / min(b16), "b16_speedup": min(times[base][0]) / min(b16),
               "b1_ms_mean": 1000 * min(b1) / len(singles), "b1_speedup": min(times[base][1]) / min(b1),
               "b1_p50_ms": percentile(ms, 50), "b1_p99_ms": percentile(ms, 99), "b16_seconds_per_round": b16}
        result["models"][k] = row
        print(f"{k:>30} {row['macro_f1']:>8.4f} {row['labels_differing_from_tensorflow']:>12} "
              f"{row['b16_examples_per_sec']:>9.1f} {row['b16_speedup']:>5.2f} "
              f"{row['b1_p50_ms']:>6.2f}/{row['b1_p99_ms']:<6.2f}")
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
