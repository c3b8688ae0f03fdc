"""Baselines a user would try before BERT, on the same regression split as `python -m tfbert.train --task regression`.

    python benchmarks/regression_baseline.py [--train-file F --valid-file F --test-file F --text-column C
                                              --text-b-column C --label-column C] [--seed 0] [--output JSON]

* mean:  every prediction is the train labels' mean (the floor: correlations undefined, MAE/RMSE of no model).
* ridge: TF-IDF (word 1-2-grams + character 2-5-grams, sublinear tf) + scikit-learn Ridge; alpha chosen on the
         validation split, then refitted on train + valid. For pairs, the two texts' vectors are concatenated
         with their element-wise product (a similarity feature).
Scored on test with the same metrics as the BERT run's metrics.json (Pearson, Spearman, MAE, RMSE in label units).
Default data: the built-in tweets' signed sentiment score, split with --seed as the training run splits it.
Prints a table and writes JSON (default benchmarks/results/regression_baseline.json) with the CPU model.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import write_result  # noqa: E402

from tfbert.data.regression import load_scored  # noqa: E402
from tfbert.files import clean_json  # noqa: E402
from tfbert.metrics.regression import format_regression_report, regression_metrics  # noqa: E402

ALPHAS = (0.3, 1.0, 3.0, 10.0)


def features(train_texts, *others, pairs: bool):
    """TF-IDF matrices fitted on the train texts (for pairs: on both sides, with a product feature)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    union = FeatureUnion([("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                          ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2,
                                                    sublinear_tf=True, max_features=200_000))])
    if not pairs:
        union.fit(train_texts)
        return [union.transform(t) for t in (train_texts, *others)]
    union.fit(list(train_texts[0]) + list(train_texts[1]))

    def encode(ab):
        a, b = union.transform(ab[0]), union.transform(ab[1])
        return hstack([a, b, a.multiply(b)]).tocsr()
    return [encode(t) for t in (train_texts, *others)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--train-file", "--valid-file", "--test-file", "--text-b-column"):
        ap.add_argument(name)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--seed", type=int, default=0, help="split seed; 0 = the split of the default regression run")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "regression_baseline.json"))
    a = ap.parse_args(argv)
    from sklearn.linear_model import Ridge

    data = load_scored(a.train_file, a.valid_file, a.test_file, text_column=a.text_column,
                       label_column=a.label_column, text_b_column=a.text_b_column, seed=a.seed)
    pairs = data.has_pairs
    texts = lambda df: (df["text"].tolist(), df["text_b"].tolist()) if pairs else df["text"].tolist()  # noqa: E731
    y_train, y_valid, y_test = (d["label"].to_numpy() for d in (data.train, data.valid, data.test))
    results = {"split": {"train": len(data.train), "valid": len(data.valid), "test": len(data.test), "seed": a.seed},
               "data": a.train_file or "built-in tweets, signed sentiment score"}
    results["mean"] = regression_metrics(y_test, np.full(len(y_test), data.mean))

    t = time.time()
    x_train, x_valid = features(texts(data.train), texts(data.valid), pairs=pairs)
    valid_spearman = {alpha: regression_metrics(y_valid, Ridge(alpha=alpha).fit(x_train, y_train).predict(x_valid))
                      ["spearman"] for alpha in ALPHAS}
    alpha = max(ALPHAS, key=lambda k: valid_spearman[k])
    both = pd.concat([data.train, data.valid])
    x_both, x_test = features(texts(both), texts(data.test), pairs=pairs)
    predicted = Ridge(alpha=alpha).fit(x_both, both["label"].to_numpy()).predict(x_test)
    results["ridge"] = {**regression_metrics(y_test, predicted), "alpha": alpha,
                        "valid_spearman_by_alpha": {str(k): v for k, v in valid_spearman.items()},
                        "trained_on": "train + valid", "seconds": round(time.time() - t, 1)}
    for name in ("mean", "ridge"):
        print(f"== {name}\n{format_regression_report(results[name])}\n")
    write_result(a.output, clean_json(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
