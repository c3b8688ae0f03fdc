#!/usr/bin/env python
"""Train-step time with --freeze-layers on the real default encoder, side by side in one process.

    python benchmarks/freezing.py [--steps 20] [--repeats 3] [--batch-size 32] [--seq-length 64]

Builds the classifier on minilm-l6 (tfbert.encoders.registry.resolve_encoder) once per setting:
  all         every encoder variable trains (--no-freeze-word-embeddings)
  word-emb    the word-embedding table fixed (classification's default)
  freeze-0    --freeze-layers 0: all embeddings fixed
  freeze-3    --freeze-layers 3: embeddings and the bottom 3 of 6 layers fixed
  freeze-6    --freeze-layers 6: only the pooler and the head train
each with the loop's optimizer (tfbert.optim.make_optimizer) and per-layer plan (tfbert.layerwise.plan_layers).
After two untimed steps each (tracing), the settings take turns, `--steps` steps at a time, `--repeats` times, on
the same random batch of full-length rows; the median seconds per step of each setting and its speed-up over
`all` and over `word-emb` are printed and written to benchmarks/results/freezing.json with the CPU, its flags and
the machine's load (figures from a shared machine are noisier than the ratios).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from measure import cpu, cpu_busy_seconds, write_result

SETTINGS = {"all": (False, None), "word-emb": (True, None), "freeze-0": (True, 0), "freeze-3": (True, 3),
            "freeze-6": (True, 6)}  # name -> (freeze word embeddings, --freeze-layers)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-length", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "freezing.json"))
    a = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tfbert.config import RunConfig
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.layerwise import plan_layers
    from tfbert.optim import make_optimizer
    from tfbert.tasks.classification import build_classifier

    handles = resolve_encoder("minilm-l6")
    rng = np.random.default_rng(0)
    shape = (a.batch_size, a.seq_length)
    x = {"input_word_ids": rng.integers(1000, 30000, shape).astype(np.int32), "input_mask": np.ones(shape, np.int32),
         "input_type_ids": np.zeros(shape, np.int32)}
    data = tf.data.Dataset.from_tensors((x, rng.integers(0, 3, a.batch_size))).repeat()
    runs = {}
    for name, (word_emb, freeze_layers) in SETTINGS.items():
        keras.utils.set_random_seed(0)
        model = build_classifier(handles.encoder, 3, freeze_word_embeddings=word_emb)
        plan = plan_layers(model, RunConfig(freeze_layers=freeze_layers), 1, 10_000, log=lambda *_: None)
        model.compile(make_optimizer(5e-5, 10_000, layerwise=plan.optimizer_settings),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        step, batches = model.make_train_function(), iter(data)
        for _ in range(2):
            float(step(batches)["loss"])
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        runs[name] = {"step": step, "batches": batches, "seconds": [], "trainable_parameters": trainable}
        print(f"{name}: {trainable:,} trainable parameters", flush=True)

    load_before, busy, t0 = os.getloadavg(), cpu_busy_seconds(), time.perf_counter()
    cpu_self0 = time.process_time()
    for repeat in range(a.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                loss = run["step"](run["batches"])["loss"]
            float(loss)  # waits for the last step
            run["seconds"].append((time.perf_counter() - t) / a.steps)
            print(f"repeat {repeat + 1} {name}: {run['seconds'][-1]:.3f} s/step", flush=True)
    wall = time.perf_counter() - t0
    others = max(0.0, cpu_busy_seconds() - busy - (time.process_time() - cpu_self0)) / wall

    results = {name: {"median_s_per_step": round(statistics.median(r["seconds"]), 4),
                      "s_per_step": [round(s, 4) for s in r["seconds"]],
                      "trainable_parameters": r["trainable_parameters"]} for name, r in runs.items()}
    for r in results.values():
        r["speedup_vs_all"] = round(results["all"]["median_s_per_step"] / r["median_s_per_step"], 2)
        r["speedup_vs_word_emb"] = round(results["word-emb"]["median_s_per_step"] / r["median_s_per_step"], 2)
    report = {"cpu": cpu(), "tensorflow": tf.__version__, "encoder": handles.encoder, "precision": handles.precision,
              "batch_size": a.batch_size, "seq_length": a.seq_length, "steps": a.steps, "repeats": a.repeats,
              "load_average_before": [round(v, 2) for v in load_before],
              "other_processes_cpus": round(others, 2), "settings": results}
    print(f"\n{'setting':<10} {'trainable':>12} {'s/step':>8} {'vs all':>7} {'vs word-emb':>12}")
    for name, r in results.items():
        print(f"{name:<10} {r['trainable_parameters']:>12,} {r['median_s_per_step']:>8.3f} "
              f"{r['speedup_vs_all']:>6.2f}x {r['speedup_vs_word_emb']:>11.2f}x")
    print(f"CPU: {report['cpu']['model']} ({', '.join(report['cpu']['flags'])}); other processes kept "
          f"{others:.2f} CPUs busy meanwhile")
    write_result(a.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
