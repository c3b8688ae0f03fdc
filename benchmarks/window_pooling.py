#!/usr/bin/env python
"""--window-pooling mean vs max vs attention, against truncate and head-tail, on long texts built from real tweets.

    python benchmarks/window_pooling.py [--seeds 0,1,2] [--train 2000] [--texts 150] [--out results/window_pooling.json]

Per seed, the built-in tweets (tfbert.data.tweets) are split into disjoint train / valid / test pools. A sentiment
model is trained on short tweets of the train pool (`tfbert.train --task classify` with its defaults; every tweet
fits one window, so training is the same whichever --long-texts the export uses). Its best weights are then read
through each way of reading a long text, on two families of long texts made from the valid and test pools:

- one-part: a polar (negative or positive) tweet at a uniformly random position among neutral tweets, labelled
  with the polar tweet's label; and texts of neutral tweets only, labelled neutral (a third each). The label sits
  in one part, as in a review that narrates and then judges.
- same-label: tweets of one label joined, labelled with it (every part carries the label; the family of
  benchmarks/long_texts.py).

Each family is built at several lengths (--lengths, in tweets; the windows per text are reported). Attention pooling
is fitted on the family's validation texts (mixed lengths), as `tfbert.train --window-pooling attention` fits it on
its validation split; mean and max need no fitting. Truncate and head-tail read the first window (head-tail: the
first quarter and the last three quarters of it). Reported: test macro-F1 per family, length, reading; for
one-part also by the polar tweet's position (first, middle, last third). Written to benchmarks/results/
window_pooling.json with the CPU, date and checkout; `--markdown` prints the docs' table of it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import cpu, mean_sd, write_result  # noqa: E402

READINGS = ("truncate", "head-tail", "mean", "max", "attention")
POLAR, NEUTRAL = ("negative", "positive"), "neutral"


def one_part(tweets, n: int, lengths: list[int], rng):
    """`n` texts per length: a third with a negative, a third with a positive tweet at a random position among
    neutral tweets, a third neutral tweets only. Columns text, label, length (tweets), position (0-1, NaN)."""
    import pandas as pd
    neutral = tweets[tweets["label"] == NEUTRAL]["text"].to_numpy()
    rows = []
    for k in lengths:
        for i in range(n):
            kind = (*POLAR, NEUTRAL)[i % 3]
            parts = list(rng.choice(neutral, k, replace=k > len(neutral)))
            position = float("nan")
            if kind != NEUTRAL:
                polar = tweets[tweets["label"] == kind]["text"].to_numpy()
                at = int(rng.integers(0, k))
                parts[at] = polar[rng.integers(0, len(polar))]
                position = at / max(k - 1, 1)
            rows.append((" ".join(parts), kind, k, position))
    return pd.DataFrame(rows, columns=["text", "label", "length", "position"])


def same_label(tweets, n: int, lengths: list[int], rng):
    """`n` texts per length, a third per label, each `length` tweets of that label joined."""
    import pandas as pd
    rows = []
    for k in lengths:
        for i in range(n):
            label = (*POLAR, NEUTRAL)[i % 3]
            pool = tweets[tweets["label"] == label]["text"].to_numpy()
            rows.append((" ".join(rng.choice(pool, k, replace=False)), label, k, float("nan")))
    return pd.DataFrame(rows, columns=["text", "label", "length", "position"])


FAMILIES = {"one-part": one_part, "same-label": same_label}


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(y_true, y_pred, average="macro", labels=sorted(set(y_true)), zero_division=0))


def trained_model(summary: dict, log):
    """The run's classifier with its best weights (as the export was made from), its config and data labels."""
    from tfbert import tasks
    from tfbert.config import make_config
    from tfbert.fit import resolve_run_encoder

    settings = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    task = tasks.create(settings["task"])
    config = make_config(settings).with_task_defaults(task, log)
    handles = resolve_run_encoder(config, log)
    data = task.load_data(config)
    model = task.build_model(handles.encoder, data, config)
    model.load_weights(str(Path(summary["run_dir"]) / "checkpoints" / "best")).expect_partial()
    return model, handles, data.labels


def read_all(model, preprocess, labels, frames: dict, max_seq_length: int) -> dict:
    """{family: {reading: predicted label ids of its test texts}}, attention fitted on the family's validation."""
    import numpy as np
    import tensorflow as tf

    from tfbert.data.inputs import InputSettings
    from tfbert.data.windows import fit_attention, pool_windows

    def ids(df):
        return df.assign(label_id=df["label"].map({name: i for i, name in enumerate(labels)}).astype(np.int32))

    out = {}
    for family, (valid, test) in frames.items():
        valid, test = ids(valid), ids(test)
        preds, facts = {}, {}
        for how in ("truncate", "head-tail"):
            pipe = InputSettings(max_seq_length, how).pipeline(preprocess)
            preds[how] = model.predict(pipe.dataset(test, 64), verbose=0).argmax(-1)
        pipe = InputSettings(max_seq_length, "windows").pipeline(preprocess)
        windows = {name: (np.asarray(model.predict(pipe.dataset(df, 64), verbose=0), np.float32),
                          pipe.window_items(df)) for name, df in (("valid", valid), ("test", test))}
        y = tf.constant(valid["label_id"].to_numpy(), tf.int64)
        weights, fit = fit_attention(*windows["valid"], len(valid), lambda pooled: tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(y, pooled)))
        values, item = windows["test"]
        for how in ("mean", "max", "attention"):
            preds[how] = pool_windows(tf.constant(values), item, len(test), how, weights).numpy().argmax(-1)
        facts = {"attention_weights": dict(zip(labels, weights)), "attention_fit": fit,
                 "windows_per_text": {str(int(k)): float(np.median(np.bincount(item)[test["length"].to_numpy() == k]))
                                      for k in sorted(test["length"].unique())}}
        out[family] = {"predictions": preds, "facts": facts, "y": test["label_id"].to_numpy(), "test": test}
    return out


def score(read: dict) -> dict:
    """Test macro-F1 per family, length and reading (one-part: also by the polar tweet's position)."""
    import numpy as np
    result = {}
    for family, r in read.items():
        test, y = r["test"], r["y"]
        rows = {}
        for how, pred in r["predictions"].items():
            row = {"all": macro_f1(y, pred)}
            for k in sorted(test["length"].unique()):
                at = test["length"].to_numpy() == k
                row[f"length_{int(k)}"] = macro_f1(y[at], pred[at])
            if family == "one-part":  # accuracy on the polar texts by where the polar tweet sits
                where = test["position"].to_numpy()
                for name, lo, hi in (("first", 0, 1 / 3), ("middle", 1 / 3, 2 / 3), ("last", 2 / 3, 1.01)):
                    at = (where >= lo) & (where < hi)
                    row[f"polar_accuracy_{name}"] = float(np.mean(pred[at] == y[at]))
            rows[how] = row
        result[family] = {"readings": rows, **r["facts"]}
    return result


def summarise(seeds: dict) -> dict:
    """Mean and spread over seeds of every family x reading x column."""
    out = {}
    runs = list(seeds.values())
    for family in FAMILIES:
        out[family] = {how: {col: mean_sd([run[family]["readings"][how][col] for run in runs])
                             for col in runs[0][family]["readings"][how]} for how in READINGS}
    return out


def markdown(result: dict) -> str:
    lines = []
    summary = result["summary"]
    for family, readings in summary.items():
        cols = [c for c in readings["mean"] if c != "all"]
        windows = next(iter(result["seeds"].values()))[family]["windows_per_text"]
        head = [f"{c.split('_')[1]} tweets (~{windows[c.split('_')[1]]:.0f} windows)" if c.startswith("length_")
                else f"{c.split('_')[-1]} third" for c in cols]
        where = ("; the last three columns: the share of the polar texts answered with their label, by where the "
                 "polar tweet sits" if family == "one-part" else "")
        lines += [f"**{family}**: test macro-F1, all texts and by length (mean ± sd over {len(result['seeds'])} "
                  f"seeds){where}", "",
                  "| reading | all | " + " | ".join(head) + " |", "|" + " --- |" * (len(cols) + 2)]
        for how, row in readings.items():
            cells = [f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" for c in ["all", *cols]]
            lines.append(f"| {how} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train", type=int, default=2000, help="short training tweets")
    ap.add_argument("--texts", type=int, default=150, help="test texts per family and length (valid: the same)")
    ap.add_argument("--lengths", default="6,16,40,100", help="tweets per long text")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "window_pooling.json"))
    ap.add_argument("--markdown", action="store_true", help="print the docs' table of --out and run nothing")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())))
        return 0

    import numpy as np

    from tfbert.data.pipeline import load_preprocess
    from tfbert.data.tweets import load_tweets
    from tfbert.train import fine_tune

    out = Path(a.out)
    result = json.loads(out.read_text()) if out.is_file() else {"settings": vars(a), "cpu": cpu(), "seeds": {}}
    lengths = [int(k) for k in a.lengths.split(",")]
    work = Path(a.work or tempfile.mkdtemp(prefix="window_pooling_"))
    tweets_all, _ = load_tweets()
    for seed in [int(s) for s in a.seeds.split(",")]:
        if str(seed) in result["seeds"]:
            continue
        rng = np.random.default_rng(seed)
        tweets = tweets_all.sample(frac=1.0, random_state=seed)
        cut = [0, int(0.6 * len(tweets)), int(0.8 * len(tweets)), len(tweets)]
        pools = {name: tweets.iloc[cut[i]:cut[i + 1]] for i, name in enumerate(("train", "valid", "test"))}
        short = {"train": pools["train"].iloc[:a.train], "valid": pools["valid"].iloc[:300],
                 "test": pools["test"].iloc[:500]}
        folder = work / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, df in short.items():
            df[["text", "label"]].to_csv(folder / f"{name}.csv", index=False)
        log = lambda *m: print(f"[seed {seed}]", *m, flush=True)  # noqa: E731
        trained = folder / "summary.json"  # a seed stopped after training is not trained again
        if not trained.is_file():
            trained.write_text(json.dumps(fine_tune(
                log=log, task="classify", train_file=str(folder / "train.csv"), valid_file=str(folder / "valid.csv"),
                test_file=str(folder / "test.csv"), seed=seed, max_seq_length=a.max_seq_length, verbose=2,
                output_dir=str(folder / "out")), default=str))
        summary = json.loads(trained.read_text())
        model, handles, labels = trained_model(summary, log)
        frames = {family: (make(pools["valid"], a.texts // len(lengths) + 1, lengths, rng),
                           make(pools["test"], a.texts, lengths, rng)) for family, make in FAMILIES.items()}
        scored = score(read_all(model, load_preprocess(handles), labels, frames, a.max_seq_length))
        result["seeds"][str(seed)] = {**scored, "short_test_macro_f1": summary["test"]["macro_f1"]}
        result["summary"] = summarise(result["seeds"])
        write_result(out, result)
        print(markdown(result), flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
