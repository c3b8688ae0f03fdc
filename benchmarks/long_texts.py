#!/usr/bin/env python
"""--long-texts truncate vs head-tail vs windows on long texts built from real tweets, at one --max-seq-length.

    python benchmarks/long_texts.py [--tweets-per-text 8] [--train 300] [--test 150] [--max-seq-length 64]

The long-text set: the built-in tweets (tfbert.data.tweets) are split first (train/valid/test, disjoint, seeded),
then within each split and label shuffled and joined `--tweets-per-text` at a time into one text with that label
(a document whose every part carries the label, as a long review does). Each mode trains the default encoder
(minilm-l6, classification's defaults: bf16 where native, frozen word embeddings) through tfbert.train's
fine_tune with the same epochs and no --min-steps (so windows trains on more examples, every window of every text),
is tested on the test split and exported; the export then serves the test texts in requests of 32 in this process.
Written to benchmarks/results/long_texts.json: per mode the test accuracy and macro-F1, training examples, fit
seconds and examples/s, served texts/s, with the CPU and the machine's load. One seed, small slices: the machine is
shared, so times are noisy and the accuracy differences carry the noise of a 150-text test split.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import cpu_busy_seconds, write_result  # noqa: E402

MODES = ("truncate", "head-tail", "windows")


def long_texts(tweets, per_text: int, n: int, seed: int):
    """`n` texts (balanced over labels) of `per_text` same-label tweets each, from `tweets` (text, label)."""
    import pandas as pd
    rows = []
    for label, group in tweets.groupby("label"):
        group = group.sample(frac=1.0, random_state=seed)
        k = min(n // tweets["label"].nunique(), len(group) // per_text)
        rows += [(" ".join(group["text"].iloc[i * per_text:(i + 1) * per_text]), label) for i in range(k)]
    return pd.DataFrame(rows, columns=["text", "label"]).sample(frac=1.0, random_state=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tweets-per-text", type=int, default=8)
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--valid", type=int, default=60)
    ap.add_argument("--test", type=int, default=150)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "long_texts.json"))
    a = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfbert.data.pipeline import TextPipeline, load_preprocess
    from tfbert.data.tweets import load_tweets
    from tfbert.encoders.registry import resolve_encoder
    from tfbert.train import fine_tune

    tweets, _ = load_tweets()
    tweets = tweets.sample(frac=1.0, random_state=a.seed)
    thirds = np.array_split(np.arange(len(tweets)), [int(0.6 * len(tweets)), int(0.8 * len(tweets))])
    per = a.tweets_per_text
    splits = {name: long_texts(tweets.iloc[idx], per, n, a.seed)
              for name, idx, n in zip(("train", "valid", "test"), thirds, (a.train, a.valid, a.test))}
    work = Path(tempfile.mkdtemp(prefix="long_texts_"))
    for name, df in splits.items():
        df.to_csv(work / f"{name}.csv", index=False)
    words = splits["test"]["text"].str.split().str.len()
    preprocess = load_preprocess(resolve_encoder("minilm-l6"))
    results = {"settings": vars(a), "data": {name: len(df) for name, df in splits.items()},
               "test_words_median": float(words.median()), "modes": {}}
    for mode in a.modes.split(","):
        busy0, wall0 = cpu_busy_seconds(), time.time()
        summary = fine_tune(log=lambda *m: print(f"[{mode}]", *m, flush=True), task="classify",
                            train_file=str(work / "train.csv"), valid_file=str(work / "valid.csv"),
                            test_file=str(work / "test.csv"), max_seq_length=a.max_seq_length, long_texts=mode,
                            epochs=a.epochs, min_steps=0, seed=a.seed, verbose=2, output_dir=str(work / "out"),
                            model_name=mode)
        served = tf.saved_model.load(summary["export"]).signatures["serving_default"]
        texts = splits["test"]["text"].tolist()
        served(text=tf.constant(texts[:32]))  # traced once
        t0 = time.time()
        for i in range(0, len(texts), 32):
            served(text=tf.constant(texts[i:i + 32]))
        serve_seconds = time.time() - t0
        # Training examples: the rows, or under windows every window (the pipeline's own count).
        pipe = TextPipeline(preprocess, a.max_seq_length, long_texts=mode)
        examples = pipe.count(splits["train"]) * summary["epochs_run"]
        results["modes"][mode] = {
            "test_accuracy": summary["test"]["accuracy"], "test_macro_f1": summary["test"]["macro_f1"],
            "epochs_run": summary["epochs_run"], "train_examples": examples, "fit_seconds": summary["fit_seconds"],
            "train_examples_per_second": round(examples / summary["fit_seconds"], 1),  # validation passes included
            "served_texts_per_second": round(len(texts) / serve_seconds, 1),
            "truncation": summary["truncation"],
            "machine_busy_share": round((cpu_busy_seconds() - busy0) / ((time.time() - wall0) * os.cpu_count()), 2)}
        print(json.dumps({mode: results["modes"][mode]}, indent=1), flush=True)
        write_result(a.out, results)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
