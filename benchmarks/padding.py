#!/usr/bin/env python
"""Training batches: batch count vs the plan, and padding, for three ways of grouping by length.

    python benchmarks/padding.py [--batch-size 32] [--max-seq-length 128] [--epochs 3] [--seed 0] [--rows N]

On the built-in tweets tokenized by the default encoder's preprocess model, each epoch of
  bucketed      the former group_by_window over BUCKET_BOUNDARIES (copied here; one partial batch per bucket),
  grouped       tfbert.data.pipeline.length_grouped_batches (megabatches sorted by length, as Hugging Face),
  random        shuffled batches, no grouping,
  sorted        all rows sorted by length (not a training order: the padding lower bound),
is packed with [CLS]/[SEP] to each batch's longest (capped at max_seq_length). Counts batches against the planned
ceil(rows / batch) and the padded fraction (padded positions / all positions). Prints a table and writes
benchmarks/results/padding.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from measure import write_result

BUCKET_BOUNDARIES = (16, 24, 32, 40, 48, 64, 96)  # as in the pipeline before length_grouped_batches


def bucketed(ds, n, batch_size, seed):
    """The former TextPipeline.dataset(shuffle=True) batching: a partial batch per bucket at each epoch's end."""
    import tensorflow as tf
    boundaries = tf.constant(BUCKET_BOUNDARIES, tf.int64)

    def bucket(segments, _):
        length = tf.add_n([tf.size(s, tf.int64) for s in segments])
        return tf.reduce_sum(tf.cast(length > boundaries, tf.int64))

    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.group_by_window(bucket, lambda _, w: w.ragged_batch(batch_size), window_size=batch_size)


def load_tweets():
    from tfbert.data.tweets import load_tweets
    return load_tweets()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, help="a random sample of this many tweets (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "padding.json"))
    a = ap.parse_args(argv)

    import tensorflow as tf
    import tensorflow_hub as hub

    from tfbert.data.pipeline import TextPipeline, length_grouped_batches, steps_per_epoch
    from tfbert.encoders.registry import resolve_encoder

    df = load_tweets()
    df = df.sample(a.rows, random_state=a.seed) if a.rows else df
    n, bs = len(df), a.batch_size
    pipe = TextPipeline(hub.load(resolve_encoder("minilm-l6").preprocess), max_seq_length=a.max_seq_length)
    tokens = pipe.tokenized(df).cache()
    lengths = [int(s[0].shape[0]) for s, _ in tokens]  # also fills the cache
    planned = steps_per_epoch(n, bs)
    schemes = {
        "bucketed": bucketed(tokens, n, bs, a.seed),
        "grouped": length_grouped_batches(tokens, n, bs, lambda s, _: tf.add_n([x.row_lengths() for x in s]),
                                          seed=a.seed),
        "random": tokens.shuffle(n, seed=a.seed, reshuffle_each_iteration=True).ragged_batch(bs),
        "sorted": tf.data.Dataset.from_tensor_slices(tf.ragged.constant(sorted(lengths)))
                  .map(lambda k: ((tf.ones([k], tf.int32),), 0)).ragged_batch(bs),  # only lengths matter
    }
    result = {"tensorflow": tf.__version__, "rows": n, "batch_size": bs,
              "max_seq_length": a.max_seq_length, "epochs": a.epochs, "seed": a.seed, "planned_batches": planned,
              "mean_wordpieces": sum(lengths) / n, "schemes": {}}
    for name, ds in schemes.items():
        ds = ds.map(lambda s, y: pipe.pack(s)["input_mask"])
        batches, padded = [], []
        for _ in range(a.epochs):
            real, cells, count = 0, 0, 0
            for mask in ds:
                real, cells, count = real + int(tf.reduce_sum(mask)), cells + int(tf.size(mask)), count + 1
            batches.append(count)
            padded.append(1 - real / cells)
        result["schemes"][name] = {"batches_per_epoch": batches, "padded_fraction": padded,
                                   "padded_fraction_mean": sum(padded) / len(padded)}

    print(f"{n} tweets, batch {bs}, max_seq_length {a.max_seq_length}: planned {planned} batches/epoch")
    print(f"{'scheme':<10} {'batches/epoch':>16} {'vs plan':>8} {'padded':>8}")
    for name, r in result["schemes"].items():
        counts = "/".join(map(str, sorted(set(r["batches_per_epoch"]))))
        extra = max(r["batches_per_epoch"]) - planned
        print(f"{name:<10} {counts:>16} {extra:>+8d} {r['padded_fraction_mean']:>8.1%}")
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
