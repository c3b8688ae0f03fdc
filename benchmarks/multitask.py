#!/usr/bin/env python
"""Joint training against single-task models on the same splits and seeds, and the serving cost (issue 32).
    python benchmarks/multitask.py [--seeds 0,1,2] [--train-rows 2000] [--joint default,rate-2e-4]
                                   [--work DIR] [--out benchmarks/results/multitask.json] [-- extra train flags]
For each seed, four `python -m tfbert.train` runs on the built-in data with that --seed (so the same splits):
sentiment, ner and multilabel alone, each with its own task's defaults, and --task multitask with the three
together (its defaults; each --joint variant adds flags). --max-train-examples caps every training split (the
tweets' 29,755 rows to --train-rows; NER and multi-label have 1,916). The test scores (sentiment macro-F1, NER
entity micro-F1, multi-label micro-F1) are the exports' own, as each run reports them. Then, on the first seed's
exports, serving: the joint export's serving_default (all three answers) against the three single exports' one
after the other, on the same test tweets in batches of 64, interleaved over rounds; examples/s and the ratio.
Runs already in --out are not run again, so an interrupted benchmark continues where it stopped; --markdown prints
the docs' table of --out and runs nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measure import mean_sd, split_extra, train_cli, write_result  # noqa: E402

SINGLE = ("sentiment", "ner", "multilabel")
# name -> flags on top of --task multitask's defaults.
JOINT = {"default": [], "rate-2e-4": ["--learning-rate", "2e-4"], "rate-5e-5": ["--learning-rate", "5e-5"],
         "temperature-2": ["--sampling-temperature", "2"]}


def scores(task: str, test: dict) -> dict:
    """The figures compared: the task's headline test metric(s)."""
    if task == "sentiment":
        return {"macro_f1": test["macro_f1"], "accuracy": test["accuracy"]}
    if task == "ner":
        return {"entity_f1": (test["micro"] or {"f1": 0.0})["f1"]}
    return {"micro_f1": test["micro_f1"], "macro_f1": test["macro_f1"]}


def run(task: str, seed: int, rows: int, flags: list[str], folder: Path, extra: list[str]) -> dict:
    summary = train_cli(["--task", task, "--seed", str(seed), "--max-train-examples", str(rows), *flags, *extra],
                        folder)
    out = {"export": summary["export"], "fit_seconds": summary["fit_seconds"], "epochs_run": summary["epochs_run"],
           "wall_seconds": summary["wall_seconds"]}
    if task == "multitask":
        return {**out, **{head: scores(head, summary["test"][head]) for head in SINGLE}}
    return {**out, task: scores(task, summary["test"])}


def serving(single: dict[str, str], joint: str, texts: list[str], rounds: int = 5, batch: int = 64) -> dict:
    """Examples/s of the joint export's serving_default against the single exports run one after the other."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    def runner(path):
        fn = tf.saved_model.load(path).signatures["serving_default"]
        batches = [tf.constant(texts[i:i + batch]) for i in range(0, len(texts), batch)]
        fn(text=batches[0])  # traced and warm
        return lambda: [fn(text=b) for b in batches]

    joint_fn, single_fns = runner(joint), [runner(p) for p in single.values()]
    joint_times, single_times = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        joint_fn()
        joint_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for fn in single_fns:
            fn()
        single_times.append(time.perf_counter() - t)
    best_joint, best_single = min(joint_times), min(single_times)
    return {"texts": len(texts), "batch": batch, "rounds": rounds,
            "joint_examples_per_s": round(len(texts) / best_joint, 1),
            "singles_examples_per_s": round(len(texts) / best_single, 1),
            "joint_speedup": round(best_single / best_joint, 3)}


def summarise(runs: dict) -> dict:
    """Per model (single, joint variants) and head: mean and spread over seeds."""
    table: dict = {}
    for key, r in runs.items():
        model = key.split("/")[0] if key.startswith("joint") else "single"
        for head in SINGLE:
            if head in r:
                for metric, value in r[head].items():
                    table.setdefault(model, {}).setdefault(head, {}).setdefault(metric, []).append(value)
    return {model: {head: {m: {**mean_sd(v), "seeds": len(v)} for m, v in metrics.items()}
                    for head, metrics in heads.items()} for model, heads in table.items()}


HEADLINE = {"sentiment": "macro_f1", "ner": "entity_f1", "multilabel": "micro_f1"}


def markdown(runs: dict) -> str:
    """Markdown: per model (single, joint variants) each head's headline test metric, mean +- sd, per seed, and the
    paired difference from the single model on the seeds both ran."""
    rows = ["| model | head | metric | seeds | mean +- sd | per seed | paired difference from single |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    models = sorted({key.split("/")[0] for key in runs}, key=lambda m: (m.startswith("joint"), m))
    for model in ["single"] + [m for m in models if m.startswith("joint")]:
        for head, metric in HEADLINE.items():
            found = {int(key.split("/")[1]): r[head][metric] for key, r in runs.items()
                     if key.split("/")[0] == (head if model == "single" else model) and head in r}
            if not found:
                continue
            single = {int(key.split("/")[1]): r[head][metric] for key, r in runs.items()
                      if key.split("/")[0] == head}
            paired = [found[s] - single[s] for s in found if s in single]
            values = list(found.values())  # unrounded: mean_sd's 4 places would round 0.35254 to 0.352 here
            stats = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
            diff = "-" if model == "single" or not paired else f"{sum(paired) / len(paired):+.3f} ({len(paired)} seeds)"
            rows.append(f"| {model} | {head} | {metric} | {len(found)} | {stats['mean']:.3f} +- {stats['std']:.3f} | "
                        f"{', '.join(f'{v:.3f}' for _, v in sorted(found.items()))} | {diff} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train-rows", type=int, default=2000, help="--max-train-examples of every run")
    ap.add_argument("--joint", default="default", help=f"multitask variants, of {', '.join(JOINT)}")
    ap.add_argument("--work", default="/tmp/tfbert-multitask", help="run folders and logs")
    ap.add_argument("--out", default=str(HERE / "results" / "multitask.json"))
    ap.add_argument("--markdown", action="store_true", help="print the docs' table of --out and run nothing")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())["runs"]))
        return 0
    variants = a.joint.split(",")
    unknown = [v for v in variants if v not in JOINT]
    if unknown:
        ap.error(f"unknown --joint {', '.join(unknown)}; choose from {', '.join(JOINT)}")
    out, work = Path(a.out), Path(a.work)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    runs = previous.get("runs", {}) if previous.get("train_rows") == a.train_rows else {}
    kept = {k: previous[k] for k in ("notes", "serving_v1") if k in previous and runs}
    seeds = [int(s) for s in a.seeds.split(",")]

    def save(extra_result: dict | None = None):
        write_result(out, {"train_rows": a.train_rows, "seeds": seeds, "extra_flags": extra, "runs": runs,
                           "summary": summarise(runs), **kept, **(extra_result or {})})

    for seed in seeds:
        jobs = [(task, task, []) for task in SINGLE] + [(f"joint-{v}", "multitask", JOINT[v]) for v in variants]
        for name, task, flags in jobs:
            key = f"{name}/{seed}"
            if key in runs:
                continue
            print(f"{key}: training", flush=True)
            runs[key] = run(task, seed, a.train_rows, flags, work / name / str(seed), extra)
            print(f"{key}: {json.dumps({k: v for k, v in runs[key].items() if k != 'export'})}", flush=True)
            save()
    first = seeds[0]
    from tfbert.data.classification import load_dataset
    texts = load_dataset(seed=first).test["text"].astype(str).tolist()[:1024]
    cost = serving({t: runs[f"{t}/{first}"]["export"] for t in SINGLE}, runs[f"joint-{variants[0]}/{first}"]["export"],
                   texts)
    print(f"serving: {json.dumps(cost)}")
    save({"serving": {"model": f"joint-{variants[0]}/{first}", **cost}})
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
