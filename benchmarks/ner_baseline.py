"""Baselines a user would try before BERT, on the same NER split as `python -m tfbert.train --task ner`.

    python benchmarks/ner_baseline.py [--train-file F --valid-file F --test-file F] [--seed 0] [--tfbert]
                                      [--output JSON] [-- extra flags of tfbert.train]

* logreg: per-token logistic regression (scikit-learn) over hand-made features of the word and its neighbours.
* crf:    a linear-chain CRF (sklearn-crfsuite) over the same features, if that package is installed.
Both are trained on train + valid (no early stopping to feed) and scored on test with the same seqeval metrics
as the BERT run's metrics.json.
* tfbert (--tfbert): `python -m tfbert.train --task ner` with its defaults on the same files and seed (its own
  validation split for early stopping); its test figures are those of its metrics.json.
Prints a table and writes JSON (default benchmarks/results/ner_baseline.json).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import file_flags, split_extra, train_cli, write_result  # noqa: E402

from tfbert.data.tagged import load_ner_dataset  # noqa: E402
from tfbert.metrics.entities import entity_metrics, format_ner_report  # noqa: E402


def word_features(word: str, prefix: str = "") -> dict:
    return {f"{prefix}lower": word.lower(), f"{prefix}suffix3": word[-3:].lower(), f"{prefix}suffix2": word[-2:].lower(),
            f"{prefix}prefix3": word[:3].lower(), f"{prefix}is_title": word.istitle(), f"{prefix}is_upper": word.isupper(),
            f"{prefix}is_digit": word.isdigit(), f"{prefix}has_digit": any(c.isdigit() for c in word),
            f"{prefix}first": word[:1] if word[:1] in "@#" else "", f"{prefix}is_url": word.startswith("http"),
            f"{prefix}shape": "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c
                                      for c in word[:6])}


def sentence_features(tokens: list[str]) -> list[dict]:
    out = []
    for i, word in enumerate(tokens):
        f = {"bias": 1.0, **word_features(word)}
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(tokens):
                f.update({k: v for k, v in word_features(tokens[j], f"{offset}:").items()
                          if k.split(":")[1] in ("lower", "is_title", "is_upper", "first", "suffix3")})
            else:
                f[f"{offset}:pad"] = True
        out.append(f)
    return out


def run_logreg(train, test):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    vec = DictVectorizer()
    x = vec.fit_transform([f for s in train for f in sentence_features(s.tokens)])
    y = [t for s in train for t in s.tags]
    clf = LogisticRegression(C=5.0, max_iter=2000).fit(x, y)
    predicted = clf.predict(vec.transform([f for s in test for f in sentence_features(s.tokens)])).tolist()
    out, i = [], 0
    for s in test:
        out.append(predicted[i:i + len(s.tokens)])
        i += len(s.tokens)
    return out


def run_crf(train, test):
    import sklearn_crfsuite
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=200, all_possible_transitions=True)
    crf.fit([sentence_features(s.tokens) for s in train], [s.tags for s in train])
    return [list(p) for p in crf.predict([sentence_features(s.tokens) for s in test])]


def run_tfbert(a, extra: list[str]) -> dict:
    """The default tagger through the CLI; its metrics.json test figures plus its epochs and fit time."""
    given = file_flags({split: getattr(a, f"{split}_file") for split in ("train", "valid", "test")})
    folder = Path(tempfile.mkdtemp(prefix="tfbert-ner-benchmark-")) / "run"  # kept, with run.log beside it
    summary = train_cli(["--task", "ner", *given, "--seed", str(a.seed), *extra], folder)
    return {**summary["test"], "epochs_run": summary["epochs_run"], "fit_seconds": summary["fit_seconds"],
            "flags": extra}


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-file")
    ap.add_argument("--valid-file")
    ap.add_argument("--test-file")
    ap.add_argument("--seed", type=int, default=0, help="split seed; 0 = the split of the default NER run")
    ap.add_argument("--tfbert", action="store_true", help="also run python -m tfbert.train --task ner (minutes)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "ner_baseline.json"))
    a = ap.parse_args(argv)
    data = load_ner_dataset(a.train_file, a.valid_file, a.test_file, seed=a.seed)
    train, gold = data.train + data.valid, [s.tags for s in data.test]
    runners = {"logreg": lambda: entity_metrics(gold, run_logreg(train, data.test))}  # name -> test metrics
    try:
        import sklearn_crfsuite  # noqa: F401
        runners["crf"] = lambda: entity_metrics(gold, run_crf(train, data.test))
    except ImportError:
        print("sklearn-crfsuite is not installed: skipping the CRF baseline (pip install sklearn-crfsuite)")
    if a.tfbert:
        runners["tfbert"] = lambda: run_tfbert(a, extra)
    results = {"split": {"train": len(data.train), "valid": len(data.valid), "test": len(data.test), "seed": a.seed},
               "trained_on": "train + valid"}
    for name, run in runners.items():
        t = time.time()
        metrics = run()
        metrics["seconds"] = round(time.time() - t, 1)
        results[name] = metrics
        print(f"== {name} ({metrics['seconds']}s)\n{format_ner_report(metrics)}\n")
    print("test entity micro-F1: " + ", ".join(f"{n} {results[n]['micro']['f1']:.4f}" for n in runners))
    write_result(a.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
