#!/usr/bin/env python
"""Does continued MLM pre-training on the corpus's own text help fine-tuning on a small labelled subset?

    python benchmarks/pretrain_downstream.py [--labelled 500] [--pretrain-steps 200] [--seeds 0 1]

On the built-in tweets (tfbert.data.tweets): a stratified test set and validation set are set aside; a small
stratified labelled subset of the rest is the training set. The encoder (minilm-l6) is pre-trained with
tfbert.pretrain on the text of every tweet outside the test and validation sets (labels unused), then the plain
classification recipe (tfbert.fit, --task classify, fp32 for both: bf16 is only automatic for the registered
encoder) fine-tunes the original and the adapted encoder on the labelled subset, once per seed. Writes
benchmarks/results/pretrain_downstream.json after each run (partial results survive an interruption): the
pre-training's held-out masked-token accuracy before/after, and each run's test macro-F1, accuracy and wall time,
with the CPU and the load average (the machine may be shared: times are indicative).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import write_result  # noqa: E402  (benchmarks/ is not a package)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labelled", type=int, default=500)
    ap.add_argument("--valid", type=int, default=300)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--pretrain-batch-size", type=int, default=32)
    ap.add_argument("--pretrain-learning-rate", type=float, default=1e-4)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--min-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--work", default="/tmp/tfbert-pretrain-downstream")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pretrain_downstream.json"))
    a = ap.parse_args(argv)

    from sklearn.model_selection import train_test_split

    from tfbert.data.tweets import load_tweets
    from tfbert.encoders.registry import latest_pair_version
    from tfbert.fit import fit
    from tfbert.pretrain import pretrain
    from tfbert.train import parse_config

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    df, _ = load_tweets()
    rest, test = train_test_split(df, test_size=a.test, stratify=df["label"], random_state=0)
    rest, valid = train_test_split(rest, test_size=a.valid, stratify=rest["label"], random_state=0)
    _, labelled = train_test_split(rest, test_size=a.labelled, stratify=rest["label"], random_state=0)
    for name, part in (("train", labelled), ("valid", valid), ("test", test)):
        part[["text", "label"]].to_csv(work / f"{name}.csv", index=False)
    (work / "unlabelled.txt").write_text("\n".join(rest["text"].str.replace("\n", " ")) + "\n", encoding="utf-8")

    result = {"what": "continued MLM pre-training on the tweets' text, then fine-tuning on a small labelled subset",
              "note": "2-core AMD EPYC with AVX-512 and AVX512-BF16, no AMX; machine shared with "
              "other jobs (times indicative)", "settings": vars(a),
              "data": {"labelled": len(labelled), "valid": len(valid), "test": len(test), "unlabelled": len(rest)},
              "runs": []}

    def save():
        result["load_average"] = os.getloadavg()
        runs = result["runs"]
        result["summary"] = {enc: {"test_macro_f1_mean": statistics.mean(f), "test_macro_f1_std":
                                   statistics.stdev(f) if len(f) > 1 else None, "runs": len(f)}
                             for enc in sorted({r["encoder"] for r in runs})
                             for f in [[r["test_macro_f1"] for r in runs if r["encoder"] == enc]]}
        write_result(a.out, result)

    adapted = work / "adapted"  # a model base: version 1 is the pair, runs/1 its run folder
    version = latest_pair_version(str(adapted))
    if version is None:
        version = Path(pretrain(work / "unlabelled.txt", adapted, encoder="minilm-l6", max_steps=a.pretrain_steps,
                                batch_size=a.pretrain_batch_size, learning_rate=a.pretrain_learning_rate,
                                max_seq_length=a.max_seq_length, max_valid=1000, seed=0)["export"])
    p = json.loads((version / "tfbert.json").read_text())["pretraining"]
    run = json.loads((adapted / "runs" / version.name / "metrics.json").read_text())
    result["pretraining"] = {**{k: p[k] for k in ("steps", "batch_size", "learning_rate", "max_seq_length", "masking",
                                                  "held_out_masked_token", "mlm_head", "texts")},
                             "train_seconds": run["fit_seconds"]}
    save()
    for seed in a.seeds:
        for name, encoder in (("minilm-l6", "minilm-l6"), ("minilm-l6 + continued pre-training", str(adapted))):
            started = time.monotonic()
            config = parse_config([
                "--verbose", "2", "--task", "classify", "--train-file", str(work / "train.csv"),
                "--valid-file", str(work / "valid.csv"), "--test-file", str(work / "test.csv"),
                "--encoder", encoder, "--precision", "fp32", "--max-seq-length", str(a.max_seq_length),
                "--min-steps", str(a.min_steps), "--seed", str(seed), "--output-dir", str(work / "runs"),
                "--model-name", f"{'adapted' if encoder != 'minilm-l6' else 'original'}-{seed}"])
            summary = fit(config)
            result["runs"].append({"encoder": name, "seed": seed, "test_macro_f1": summary["test"]["macro_f1"],
                                   "test_accuracy": summary["test"]["accuracy"], "epochs": summary["epochs_run"],
                                   "seconds": round(time.monotonic() - started, 1)})
            save()
            print(json.dumps(result["runs"][-1]), flush=True)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
