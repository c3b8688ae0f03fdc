#!/usr/bin/env python
"""Serving three heads: one multitask export (trained Keras graph, then the inference graph) against three single
exports one after the other (issue 32).

    python benchmarks/serving_heads.py [--precision auto] [--rounds 4] [--batches 16] [--singles 64]

Builds, on the embedded MiniLM, the heads of the default multitask run (sentiment "mood", ner and the multi-label
entity types), untrained: speed does not depend on the weights. Exports them as one multitask model twice (without
encoder_handle: the trained Keras graph; with it: tfbert's forward-only inference graph, all heads on one pass) and
as three single models (classifier, tagger, multi-label; each on the inference graph), loads the SavedModels and
times raw-string serving_default calls in one process, interleaved round by round: batch 64 over the tweet test
split in file order, and batch 1 (mean, p50, p99). "three singles" is the three single exports called one after
the other on each request. Prints a table and writes benchmarks/results/serving_heads.json. Ratios within one run
are what to quote.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import serving_ab
from measure import percentile


def main(argv=None) -> int:
    ap = serving_ab.parser(__doc__, "serving_heads.json", rounds=4)
    a = ap.parse_args(argv)

    import tensorflow as tf
    import tf_keras as keras

    from tfbert.data.classification import load_dataset
    from tfbert.data.inputs import InputSettings
    from tfbert.data.multilabel import builtin_rows
    from tfbert.data.tagged import load_ner_dataset
    from tfbert.encoders.layer import encoder_layer
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.export.classifier import export_classifier
    from tfbert.export.multilabel import export_multilabel
    from tfbert.export.multitask import export_multitask
    from tfbert.export.serving_core import SERVING_CHECK_TEXTS
    from tfbert.export.tagger import export_tagger
    from tfbert.tasks.classification import build_classifier, encoder_inputs, pooled_head
    from tfbert.tasks.ner import build_tagger, tag_head

    data = load_dataset(None, None, None, seed=0)
    tags = load_ner_dataset().tags
    types = sorted({t for names in builtin_rows()["labels"] for t in names})
    handles = resolve_encoder("minilm-l6", precision=a.precision)
    texts = data.test["text"].tolist()
    check = texts[:SERVING_CHECK_TEXTS]
    work = Path(tempfile.mkdtemp(prefix="tfbert-serving-heads-"))
    quiet = lambda *_: None  # noqa: E731
    settings = InputSettings(128)

    inputs = encoder_inputs()
    outputs = encoder_layer(handles.encoder)(inputs)
    core = keras.Model(inputs, [pooled_head(inputs, outputs, len(data.labels), prefix="mood_"),
                                tag_head(outputs, len(tags), prefix="ner_"),
                                pooled_head(inputs, outputs, len(types), prefix="multilabel_")])
    heads = {"mood": {"serving": "classifier", "labels": list(data.labels), "settings": {"pooling": "pooled"}},
             "ner": {"serving": "tagger", "tags": list(tags)},
             "multilabel": {"serving": "multilabel", "labels": types, "thresholds": [0.5] * len(types),
                            "settings": {"pooling": "pooled"}}}
    info, exports = {}, {}
    for graph, handle in (("joint trained", None), ("joint inference", handles.encoder)):
        exports[graph] = export_multitask(core, handles.preprocess, heads, work / graph.replace(" ", "-"),
                                          inputs=settings, encoder_handle=handle, check_texts=check,
                                          info=info.setdefault(graph, {}), log=quiet)
    del core
    singles = {
        "mood": export_classifier(build_classifier(handles.encoder, len(data.labels)), handles.preprocess,
                                  data.labels, work / "mood", inputs=settings, encoder_handle=handles.encoder,
                                  check_texts=check, info=info.setdefault("single mood", {}), log=quiet),
        "ner": export_tagger(build_tagger(handles.encoder, len(tags)), handles.preprocess, tags, work / "ner",
                             inputs=settings, encoder_handle=handles.encoder, check_texts=check,
                             info=info.setdefault("single ner", {}), log=quiet),
        "multilabel": export_multilabel(build_classifier(handles.encoder, len(types)), handles.preprocess, types,
                                        [0.5] * len(types), work / "multilabel", inputs=settings,
                                        encoder_handle=handles.encoder, check_texts=check[:32],
                                        info=info.setdefault("single multilabel", {}), log=quiet)}
    keras.backend.clear_session()

    load = lambda path: tf.saved_model.load(str(path)).signatures["serving_default"]  # noqa: E731
    joint = {g: load(p) for g, p in exports.items()}
    single_fns = [load(p) for p in singles.values()]

    def three(x):
        answers = [f(text=x) for f in single_fns]
        return {"label_id": answers[0]["label_id"], "rest": [a["num_entities" if "num_entities" in a else "num_labels"]
                                                              for a in answers[1:]]}

    serves = {g: (lambda x, f=f: {"label_id": f(text=x)["mood_label_id"]}) for g, f in joint.items()}
    serves["three singles"] = three
    batches, ones = serving_ab.requests(texts, a)
    single_ms = {}
    b64, b1 = serving_ab.interleaved(serves, batches, ones, a.rounds, single_ms)
    n64 = sum(int(b.shape[0]) for b in batches)
    result = {"precision": handles.precision, "rounds": a.rounds, "batch64_calls": len(batches),
              "batch1_calls": len(ones), "export_info": info, "serving": {}}
    base = "three singles"
    print(f"{handles.precision}: {'serving':>16} {'b64 ex/s':>9} {'x singles':>10} {'b1 ms':>7} {'p50/p99':>11}")
    for name in serves:
        ex_s, ms = n64 / min(b64[name]), 1000 * min(b1[name]) / len(ones)
        row = {"b64_examples_per_sec": ex_s, "b64_speedup_over_singles": min(b64[base]) / min(b64[name]),
               "b1_ms_mean": ms, "b1_speedup_over_singles": min(b1[base]) / min(b1[name]),
               "b1_p50_ms": percentile(single_ms[name], 50), "b1_p99_ms": percentile(single_ms[name], 99),
               "b64_seconds_per_round": b64[name], "b1_seconds_per_round": b1[name]}
        result["serving"][name] = row
        print(f"{'':>{len(handles.precision) + 1}} {name:>16} {ex_s:>9.1f} {row['b64_speedup_over_singles']:>10.2f} "
              f"{ms:>7.2f} {row['b1_p50_ms']:>5.2f}/{row['b1_p99_ms']:<5.2f}")
    print("served graphs: " + ", ".join(f"{k}: {v.get('graph')}" for k, v in info.items()))
    serving_ab.write(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
