#!/usr/bin/env python
"""Does continued pre-training on the corpus's own text help fine-tuning on a small labelled subset?

    python benchmarks/pretrain_downstream.py [--labelled 500 2000] [--pretrain-steps 3000] [--objectives auto]
                                             [--seeds 0 1 2] [--work DIR] [--out JSON]

On the built-in tweets (tfbert.data.tweets): a stratified test set and validation set are set aside; stratified
labelled subsets of the rest (one per --labelled size, the smaller inside the larger) are the training sets. The
encoder (minilm-l6) is pre-trained with tfbert.pretrain (--objectives; auto picks mlm,nsp on the tweets) on the
text of every tweet outside the test and validation sets (labels unused), then the plain classification recipe
(tfbert.fit, --task classify, fp32 for both: bf16 is only automatic for the registered encoder) fine-tunes the
original and the adapted encoder on each labelled subset, once per seed. Resumable: the pre-training resumes or is
reused from --work (a killed tfbert.pretrain resumes where it stopped), and runs already in --out are skipped.
Writes --out after each run: the pre-training's objectives, steps, held-out masked-token and pair accuracy
before/after, and each run's test macro-F1, accuracy and wall time, with the CPU and the load average.
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
    ap.add_argument("--labelled", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--valid", type=int, default=300)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--objectives", default="auto", help="tfbert.pretrain --objectives")
    ap.add_argument("--pretrain-batch-size", type=int, default=32)
    ap.add_argument("--pretrain-learning-rate", type=float, default=1e-4)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--min-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
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
    pool = rest
    for size in sorted(a.labelled, reverse=True):  # nested: each smaller set is drawn from the larger one
        if size < len(pool):
            _, pool = train_test_split(pool, test_size=size, stratify=pool["label"], random_state=0)
        pool[["text", "label"]].to_csv(work / f"train-{size}.csv", index=False)
    for name, part in (("valid", valid), ("test", test)):
        part[["text", "label"]].to_csv(work / f"{name}.csv", index=False)
    (work / "unlabelled.txt").write_text("\n".join(rest["text"].str.replace("\n", " ")) + "\n", encoding="utf-8")

    out = Path(a.out)
    earlier = json.loads(out.read_text()).get("runs", []) if out.is_file() else []
    result = {"what": "continued pre-training on the tweets' text, then fine-tuning on small labelled subsets",
              "settings": vars(a), "data": {"labelled": a.labelled, "valid": len(valid), "test": len(test),
                                            "unlabelled": len(rest)},
              "runs": [r for r in earlier if r.get("labelled") in a.labelled]}

    def save():
        result["load_average"] = os.getloadavg()
        runs = result["runs"]
        result["summary"] = {f"{enc} @ {size}": {"test_macro_f1_mean": statistics.mean(f), "test_macro_f1_std":
                                                 statistics.stdev(f) if len(f) > 1 else None, "runs": len(f)}
                             for enc, size in sorted({(r["encoder"], r["labelled"]) for r in runs})
                             for f in [[r["test_macro_f1"] for r in runs
                                        if (r["encoder"], r["labelled"]) == (enc, size)]]}
        write_result(a.out, result)

    # A model base per recipe (version 1 the pair, runs/1 its run folder): an earlier recipe's pair is never reused.
    adapted = work / f"adapted-{a.objectives.replace(',', '+')}-{a.pretrain_steps}-steps"
    version = latest_pair_version(str(adapted))
    if version is None:
        version = Path(pretrain(work / "unlabelled.txt", adapted, encoder="minilm-l6", max_steps=a.pretrain_steps,
                                batch_size=a.pretrain_batch_size, learning_rate=a.pretrain_learning_rate,
                                max_seq_length=a.max_seq_length, max_valid=1000, seed=0, verbose=2,
                                objectives=a.objectives)["export"])
    p = json.loads((version / "tfbert.json").read_text())["pretraining"]
    run = json.loads((adapted / "runs" / version.name / "metrics.json").read_text())
    result["pretraining"] = {**{k: p.get(k) for k in ("objectives", "steps", "batch_size", "learning_rate",
                                                      "max_seq_length", "masking", "held_out_masked_token",
                                                      "held_out_pair", "mlm_head", "pair_head", "documents",
                                                      "real_token_share")},
                             "train_seconds": run["fit_seconds"]}
    save()
    done = {(r["encoder"], r["labelled"], r["seed"]) for r in result["runs"]}
    for size in a.labelled:
        for seed in a.seeds:
            for name, encoder in (("minilm-l6", "minilm-l6"), ("minilm-l6 + continued pre-training", str(adapted))):
                if (name, size, seed) in done:
                    continue
                run_one(a, work, size, seed, name, encoder, result, save, fit, parse_config)
    print(json.dumps(result["summary"], indent=2))
    return 0


def run_one(a, work, size, seed, name, encoder, result, save, fit, parse_config) -> None:
    started = time.monotonic()
    config = parse_config([
        "--verbose", "2", "--task", "classify", "--train-file", str(work / f"train-{size}.csv"),
        "--valid-file", str(work / "valid.csv"), "--test-file", str(work / "test.csv"),
        "--encoder", encoder, "--precision", "fp32", "--max-seq-length", str(a.max_seq_length),
        "--min-steps", str(a.min_steps), "--seed", str(seed), "--output-dir", str(work / "runs"),
        "--model-name", f"{'adapted' if encoder != 'minilm-l6' else 'original'}-{size}-{seed}"])
    summary = fit(config)
    result["runs"].append({"encoder": name, "labelled": size, "seed": seed,
                           "test_macro_f1": summary["test"]["macro_f1"],
                           "test_accuracy": summary["test"]["accuracy"], "epochs": summary["epochs_run"],
                           "seconds": round(time.monotonic() - started, 1)})
    save()
    print(json.dumps(result["runs"][-1]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
