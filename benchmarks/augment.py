#!/usr/bin/env python
"""What each --augment operation costs per epoch: input-pipeline time for an epoch of the built-in tweets.

    python benchmarks/augment.py [--strength 0.1] [--rounds 3] [--batch-size 32] [--rows N]

Builds the training dataset of TextPipeline.dataset (the default encoder's preprocess model, length-grouped batches,
packed) without augmentation, with each operation alone and with all of them, side by side in one process. Each is
run once to fill its tokenization cache and trace its functions; then `rounds` rounds time one full epoch of each, in
turn (interleaved, so that load from other processes spreads over all of them). Reports the median seconds per
epoch and the extra over no augmentation. The synonym file is a small built-in one (SYNONYMS). Prints a table and
writes benchmarks/results/augment.json. Only the input pipeline is timed, not training steps.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from measure import cpu, write_result
from padding import load_tweets

SYNONYMS = """# common tweet words, for the benchmark only
good = great, nice, fine
bad = awful, poor, terrible
happy = glad, pleased
sad = unhappy, upset
love = adore, like
hate = dislike, despise
day = morning, evening
today = tonight, now
great = good, excellent
time = moment, while
new = fresh, recent
people = folks, everyone
"""
CONFIGS = ("none", "delete", "swap", "synonym", "cutoff", "mask", "delete,swap,synonym,cutoff,mask")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strength", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, help="a random sample of this many tweets (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "augment.json"))
    a = ap.parse_args(argv)

    import tensorflow as tf

    from tfbert.config import make_config
    from tfbert.data.augment import augmentation
    from tfbert.data.pipeline import TextPipeline, load_preprocess
    from tfbert.encoders.registry import resolve_encoder

    df = load_tweets()
    df = (df.sample(a.rows, random_state=a.seed) if a.rows else df).assign(label_id=0)
    preprocess = load_preprocess(resolve_encoder("minilm-l6"))
    pipe = TextPipeline(preprocess, a.max_seq_length)
    synonyms = Path(tempfile.mkdtemp()) / "synonyms.txt"
    synonyms.write_text(SYNONYMS, encoding="utf-8")

    datasets = {}
    for ops in CONFIGS:
        settings = {} if ops == "none" else {"augment": ops, "augment_strength": a.strength, "seed": a.seed,
                                             **({"synonyms": str(synonyms)} if "synonym" in ops else {})}
        augment = augmentation(make_config(settings), preprocess) if settings else None
        datasets[ops] = pipe.dataset(df, a.batch_size, shuffle=True, seed=a.seed, augment=augment)

    def epoch(ds) -> tuple[float, int]:
        t, pieces = time.perf_counter(), 0
        for x, _ in ds:
            pieces += int(tf.reduce_sum(x["input_mask"]))
        return time.perf_counter() - t, pieces

    first = {ops: epoch(ds)[0] for ops, ds in datasets.items()}  # fills each cache, traces each function
    times = {ops: [] for ops in CONFIGS}
    pieces = {}
    for _ in range(a.rounds):
        for ops, ds in datasets.items():
            seconds, pieces[ops] = epoch(ds)
            times[ops].append(seconds)
    base = statistics.median(times["none"])
    machine = cpu()
    result = {              "note": "shared machine (other engineers' tests ran meanwhile): figures are noisy",
              "tensorflow": tf.__version__, "rows": len(df), "batch_size": a.batch_size,
              "max_seq_length": a.max_seq_length, "strength": a.strength, "rounds": a.rounds, "configs": {}}
    for ops in CONFIGS:
        median = statistics.median(times[ops])
        result["configs"][ops] = {"epoch_seconds": [round(t, 3) for t in times[ops]],
                                  "median_epoch_seconds": round(median, 3), "extra_seconds": round(median - base, 3),
                                  "relative": round(median / base, 3), "first_epoch_seconds": round(first[ops], 3),
                                  "packed_wordpieces": pieces[ops]}
    result["load_after"] = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]

    print(f"{len(df)} tweets, batch {a.batch_size}, strength {a.strength}, median of {a.rounds} epochs; "
          f"{machine['model']} ({machine['cpus']} CPUs; {', '.join(machine['flags'])}), shared machine: noisy")
    print(f"{'--augment':<34} {'s/epoch':>8} {'extra':>8} {'x':>6} {'wordpieces':>11}")
    for ops, r in result["configs"].items():
        print(f"{ops:<34} {r['median_epoch_seconds']:>8.2f} {r['extra_seconds']:>+8.2f} {r['relative']:>6.2f} "
              f"{r['packed_wordpieces']:>11d}")
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
