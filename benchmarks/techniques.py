#!/usr/bin/env python
"""The fine-tuning techniques on small data, over several seeds: which ones beat the plain recipe (issue 15).

    python benchmarks/techniques.py [--sizes 500,2000,full] [--seeds 0,1,2] [--techniques plain,freeze-3,...]
                                    [--work DIR] [--out benchmarks/results/techniques.json] [-- extra train flags]

For each size N and seed s, the built-in tweets are split with seed s as `python -m tfbert.train` splits them, then
a stratified N-row training set and an N/8-row validation set (what a user with N labelled rows would hold out)
are drawn ("full": the seed's whole train and validation splits, as the default job trains); the test set is the
whole test split, so every run of a seed is scored on the same ~3,800 tweets. Each
technique is one `python -m tfbert.train --task sentiment` run on those files (a subprocess: its own memory),
and TF-IDF + logistic regression is the baseline on the same files. Test macro-F1, accuracy, the wall time of
training and the epochs run are written per run, then mean and standard deviation over seeds per technique.

Runs already in --out are not run again, so an interrupted benchmark continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measure import file_flags, mean_sd, split_extra, train_cli, write_result  # noqa: E402

# name -> flags of `python -m tfbert.train` (on top of the sentiment task's defaults).
TECHNIQUES = {
    "plain": [],
    "freeze-3": ["--freeze-layers", "3"],
    "layer-lr-decay": ["--layer-lr-decay", "0.9"],
    "unfreeze": ["--unfreeze"],
    "augment": ["--augment", "delete,swap,mask", "--augment-strength", "0.1"],
}
# The two that gained most at 500 rows (paired by seed), together.
TECHNIQUES["unfreeze+augment"] = TECHNIQUES["unfreeze"] + TECHNIQUES["augment"]


def small_split(size: int | None, seed: int, folder: Path) -> dict:
    """train/valid/test CSVs for one (size, seed): stratified subsamples of the seed's own splits (None: whole)."""
    from tfbert.data.classification import load_dataset
    from tfbert.files import write_table

    folder.mkdir(parents=True, exist_ok=True)
    data = load_dataset(seed=seed)
    parts = {"train": _stratified(data.train, size, seed),
             "valid": _stratified(data.valid, size and max(size // 8, 24), seed),
             "test": data.test}
    files = {}
    for name, df in parts.items():
        files[name] = write_table(folder / f"{name}.csv", df[["text", "label"]])
    return files


def _stratified(df, n: int | None, seed: int):
    from sklearn.model_selection import train_test_split
    if n is None or n >= len(df):
        return df
    keep, _ = train_test_split(df, train_size=n, stratify=df["label"], random_state=seed)
    return keep


def baseline(files: dict) -> dict:
    """TF-IDF (word 1-2-grams + char_wb 2-5-grams) + logistic regression, C chosen on the validation file (without
    one: by 3-fold stratified cross-validation on the training file)."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline, make_union

    train, test = (pd.read_csv(files[k], keep_default_na=False) for k in ("train", "test"))
    valid = pd.read_csv(files["valid"], keep_default_na=False) if "valid" in files else None

    def model(c):
        features = make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                              TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
        return make_pipeline(features, LogisticRegression(C=c, max_iter=2000, class_weight="balanced"))

    def score(c):
        if valid is None:
            return cross_val_score(model(c), train["text"], train["label"], cv=3, scoring="f1_macro").mean()
        return f1_score(valid["label"], model(c).fit(train["text"], train["label"]).predict(valid["text"]),
                        average="macro")

    best_c = max((1.0, 3.0, 10.0, 30.0), key=score)
    pred = model(best_c).fit(train["text"], train["label"]).predict(test["text"])
    return {"macro_f1": float(f1_score(test["label"], pred, average="macro")),
            "accuracy": float(accuracy_score(test["label"], pred)), "C": best_c}


def train_run(files: dict, flags: list[str], seed: int, folder: Path, extra: list[str],
              task: str = "sentiment") -> dict:
    """One `python -m tfbert.train` on files {"train", "test"[, "valid"]}; its test figures and time."""
    summary = train_cli(["--task", task, *file_flags(files), "--seed", str(seed), *flags, *extra], folder)
    return {"macro_f1": summary["test"]["macro_f1"], "accuracy": summary["test"]["accuracy"],
            "fit_seconds": summary["fit_seconds"], "epochs_run": summary["epochs_run"],
            "wall_seconds": summary["wall_seconds"],
            **{k: summary[k] for k in ("constant_baseline", "best_val_macro_f1", "train_rows", "class_weights")
               if k in summary}}


def summarise(runs: dict) -> dict:
    """Mean and standard deviation over seeds per size and technique."""
    table: dict = {}
    for key, r in runs.items():
        size, name, _ = key.split("/")
        table.setdefault(size, {}).setdefault(name, []).append(r)
    out = {}
    for size, by_name in table.items():
        out[size] = {}
        for name, rs in by_name.items():
            row = {"seeds": len(rs)}
            for m in ("macro_f1", "accuracy", "fit_seconds"):
                values = [r[m] for r in rs if m in r]
                if values:
                    row[m] = mean_sd(values)
            out[size][name] = row
    return out


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000", help="training rows per run, comma-separated; full: all of them")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--techniques", default=",".join(TECHNIQUES), help=f"of {', '.join(TECHNIQUES)}")
    ap.add_argument("--work", default="/tmp/tfbert-techniques", help="data files, run folders and logs")
    ap.add_argument("--out", default=str(HERE / "results" / "techniques.json"))
    a = ap.parse_args(argv)
    names = a.techniques.split(",")
    unknown = [n for n in names if n not in TECHNIQUES]
    if unknown:
        ap.error(f"unknown technique(s) {', '.join(unknown)}; known: {', '.join(TECHNIQUES)}")
    out = Path(a.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    runs = previous.get("runs", {})
    work = Path(a.work)
    for size in a.sizes.split(","):
        if size != "full" and not size.isdigit():
            ap.error(f"--sizes: {size!r} is neither a row count nor 'full'")
        for seed in map(int, a.seeds.split(",")):
            files = small_split(None if size == "full" else int(size), seed, work / f"data-{size}-{seed}")
            for name in ["tfidf-logreg", *names]:
                key = f"{size}/{name}/{seed}"
                if key in runs:
                    continue
                print(f"== {key}", flush=True)
                folder = work / f"{size}-{name}-{seed}"
                runs[key] = baseline(files) if name == "tfidf-logreg" else train_run(
                    files, TECHNIQUES[name], seed, folder, extra)
                print(f"   {runs[key]}", flush=True)
                write_result(out, {"runs": runs, "summary": summarise(runs), "techniques": TECHNIQUES,
                                   "extra_flags": extra})
    print(f"\n{'size':>5} {'technique':<15} {'seeds':>5} {'macro-F1':>16} {'accuracy':>16} {'fit s':>12}")
    for size, rows in summarise(runs).items():
        for name, r in rows.items():
            f1, acc = r["macro_f1"], r["accuracy"]
            fit = f"{r['fit_seconds']['mean']:.0f}" if "fit_seconds" in r else "-"
            print(f"{size:>5} {name:<15} {r['seeds']:>5} {f1['mean']:>8.4f} ± {f1['std']:<5.3f} "
                  f"{acc['mean']:>8.4f} ± {acc['std']:<5.3f} {fit:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
