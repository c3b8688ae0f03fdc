"""The baseline a user would try before BERT, on the same multi-label split as `python -m tfbert.train --task
multilabel` (default: the entity types each tweet of the built-in Twitter NER corpus mentions).

    python benchmarks/multilabel_baseline.py [--train-file F --valid-file F --test-file F --label-column C
                                              --label-separator S | --label-columns a,b] [--seed 0] [--output JSON]

TF-IDF (word 1-2-grams + character 2-5-grams within words) and one logistic regression per label (one-vs-rest,
scikit-learn), trained on train; each label's threshold tuned for F1 on valid with the task's own
tune_thresholds; scored on test with the task's metrics (tfbert.metrics.multilabel), both at the tuned thresholds
and at 0.5. Prints a table and writes JSON (default benchmarks/results/multilabel_baseline.json), with the CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import write_result  # noqa: E402

from tfbert.data.multilabel import load_multilabel_dataset  # noqa: E402
from tfbert.metrics.multilabel import (  # noqa: E402
    DEFAULT_THRESHOLD,
    apply_thresholds,
    format_multilabel_report,
    multilabel_metrics,
    tune_thresholds,
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--train-file", "--valid-file", "--test-file", "--label-separator", "--label-columns"):
        ap.add_argument(name)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--seed", type=int, default=0, help="split seed; 0 = the split of the default multilabel run")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "multilabel_baseline.json"))
    a = ap.parse_args(argv)

    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    data = load_multilabel_dataset(a.train_file, a.valid_file, a.test_file, text_column=a.text_column,
                                   label_column=a.label_column, label_separator=a.label_separator,
                                   label_columns=a.label_columns, seed=a.seed)
    t = time.time()
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=False)
    x = {s: None for s in ("train", "valid", "test")}
    x["train"] = hstack([words.fit_transform(data.train["text"]), chars.fit_transform(data.train["text"])]).tocsr()
    for s in ("valid", "test"):
        df = getattr(data, s)
        x[s] = hstack([words.transform(df["text"]), chars.transform(df["text"])]).tocsr()
    y = {s: data.targets(getattr(data, s)).astype(int) for s in x}
    trainable = y["train"].sum(0) > 0  # a label without a positive train row cannot be fitted: predicted 0
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced"))
    clf.fit(x["train"], y["train"][:, trainable])

    def probabilities(split):
        p = np.zeros(y[split].shape, np.float32)
        p[:, trainable] = clf.predict_proba(x[split])
        return p

    thresholds = tune_thresholds(y["valid"], probabilities("valid"))
    p_test = probabilities("test")
    tuned = multilabel_metrics(y["test"], apply_thresholds(p_test, thresholds), data.labels)
    fixed = multilabel_metrics(y["test"], apply_thresholds(p_test, np.full(len(data.labels), DEFAULT_THRESHOLD)),
                               data.labels)
    seconds = round(time.time() - t, 1)
    results = {"model": "TF-IDF (word 1-2-grams + char_wb 2-5-grams) + one-vs-rest logistic regression "
                        "(C=10, class_weight=balanced)",
               "split": {"train": len(data.train), "valid": len(data.valid), "test": len(data.test), "seed": a.seed},
               "data": "built-in (entity types per tweet)" if a.train_file is None else a.train_file,
               "trained_on": "train; thresholds tuned on valid",
               "thresholds": dict(zip(data.labels, map(float, thresholds))),
               "tuned_thresholds": tuned, "threshold_0.5": fixed, "seconds": seconds}
    print(f"== tuned thresholds ({seconds}s)\n{format_multilabel_report(tuned)}\n")
    print(f"== threshold 0.5\n{format_multilabel_report(fixed)}\n")
    print(f"test micro-F1 {tuned['micro_f1']:.4f} (0.5: {fixed['micro_f1']:.4f}), macro-F1 {tuned['macro_f1']:.4f} "
          f"(0.5: {fixed['macro_f1']:.4f}), subset accuracy {tuned['subset_accuracy']:.4f}")
    write_result(a.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
