#!/usr/bin/env python
"""Exported serving graph: the trained Keras core vs tfbert's forward-only inference graph (tfbert.encoders.inference_graph).

    python benchmarks/serving_graph.py [--precision auto] [--rounds 4] [--peer-python VENV/bin/python]

Builds the default classifier (head untrained: speed does not depend on the weights), exports it three times
with tfbert.export.export_classifier (without encoder_handle: the trained graph; with it: the inference graph;
and with every LayerNorm in the fused form: "fused-ln", the inference graph before a few rows took the
elementwise form), loads the SavedModels and times raw-string calls of serving_default in one process,
interleaved round by round: batch 64 over the tweet test split in file order, and batch 1 (mean, p50, p99).
With --peer-python, the ONNX Runtime peer (benchmarks/reference/onnx_peer.py, the same checkpoint, fp32 and
int8) then serves the same texts. Prints a table and writes benchmarks/results/serving_graph.json. Ratios within one run are what to quote.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import serving_ab
from measure import percentile


def main(argv=None) -> int:
    ap = serving_ab.parser(__doc__, "serving_graph.json", rounds=4)
    serving_ab.peer_flags(ap)
    a = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from tfbert.data.inputs import InputSettings
    from tfbert.encoders import inference_graph
    from tfbert.export.classifier import export_classifier
    from tfbert.export.serving_core import SERVING_CHECK_TEXTS

    data, handles, model = serving_ab.default_classifier(a.precision)
    texts = data.test["text"].tolist()
    work = Path(tempfile.mkdtemp(prefix="tfbert-serving-graph-"))
    info, exports = {}, {}
    default_rows = dict(inference_graph.SMALL_LAYER_NORM_ROWS)
    for graph, handle in (("trained", None), ("inference", handles.encoder), ("fused-ln", handles.encoder)):
        inference_graph.SMALL_LAYER_NORM_ROWS = {k: 0 for k in default_rows} if graph == "fused-ln" else default_rows
        exports[graph] = export_classifier(model, handles.preprocess, data.labels, work / graph, inputs=InputSettings(128),
                                           encoder_handle=handle, check_texts=texts[:SERVING_CHECK_TEXTS],
                                           info=info.setdefault(graph, {}), log=lambda *_: None)
    inference_graph.SMALL_LAYER_NORM_ROWS = default_rows
    del model
    fns = {g: tf.saved_model.load(str(p)).signatures["serving_default"] for g, p in exports.items()}
    batches, singles = serving_ab.requests(texts, a)
    probs = {g: np.concatenate([f(text=b)["probabilities"].numpy() for b in batches]) for g, f in fns.items()}
    single_ms = {}
    b64, b1 = serving_ab.interleaved({g: (lambda x, f=f: f(text=x)) for g, f in fns.items()}, batches, singles,
                                     a.rounds, single_ms)
    n64 = sum(int(b.shape[0]) for b in batches)
    result = {"precision": handles.precision, "rounds": a.rounds, "batch64_calls": len(batches),
              "batch1_calls": len(singles), "export_info": info,
              "max_abs_prob_diff": float(np.abs(probs["inference"] - probs["trained"]).max()),
              "label_agreement": float((probs["inference"].argmax(1) == probs["trained"].argmax(1)).mean()),
              "export_mb": {g: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2 ** 20
                            for g, p in exports.items()},
              "graphs": {}}
    print(f"{handles.precision}: {'graph':>10} {'b64 ex/s':>9} {'x trained':>10} {'b1 ms':>7} {'p50/p99':>11}")
    for g in fns:
        ex_s, ms = n64 / min(b64[g]), 1000 * min(b1[g]) / len(singles)
        result["graphs"][g] = {"b64_examples_per_sec": ex_s, "b64_speedup": min(b64["trained"]) / min(b64[g]),
                               "b1_ms_mean": ms, "b1_p50_ms": percentile(single_ms[g], 50),
                               "b1_p99_ms": percentile(single_ms[g], 99), "b64_seconds_per_round": b64[g], "b1_seconds_per_round": b1[g]}
        print(f"{'':>{len(handles.precision) + 1}} {g:>10} {ex_s:>9.1f} {min(b64['trained']) / min(b64[g]):>10.2f} "
              f"{ms:>7.2f} {result['graphs'][g]['b1_p50_ms']:>5.2f}/{result['graphs'][g]['b1_p99_ms']:<5.2f}")
    print(f"max |probability difference| {result['max_abs_prob_diff']:.1e}, "
          f"label agreement {result['label_agreement']:.4f} over {n64} tweets")
    if a.peer_python:
        del fns
        result["peer"] = serving_ab.onnx_peer(a, texts, work)
        for name, m in result["peer"]["models"].items():
            print(f"{name}: {m['examples_per_s']:.1f} ex/s b64, p50/p99 {m['p50_ms']:.2f}/{m['p99_ms']:.2f} ms")
    serving_ab.write(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
