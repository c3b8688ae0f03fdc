"""Classify texts with an exported tfbert model.

    python -m tfbert.predict --model saved_models/sentiment "great day" "awful service"
    python -m tfbert.predict --model saved_models/sentiment --input-file tweets.csv --output predictions.csv

Texts on the command line (or a file without --output) print one JSON object per line:
{"text": ..., "label": ..., "probabilities": {label: p}}. With --output, the input rows are
written back with a ``label`` column and one ``p_<label>`` column per class (.csv/.tsv, or .jsonl).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tfbert.data_tables import _as_text, read_table
from tfbert.evaluate import add_common_arguments, print_notes, require_columns, run_cli

__all__ = ["main", "build_parser", "prediction_frame"]

OUTPUT_EXTENSIONS = (".csv", ".tsv", ".jsonl")
PREFIX = "predicted_"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfbert.predict",
        description="Classify texts with an exported tfbert model. Give texts as arguments or --input-file.",
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (default: none; then --input-file)")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="SavedModel version directory, or a model base directory (its highest integer version "
                        "is used) (required)")
    p.add_argument("--text-b", action="append", default=None, metavar="TEXT",
                   help="second text of a sentence pair, once per TEXT in the same order; needs a model "
                        "exported with pairs (default: none)")
    p.add_argument("--input-file", default=None, metavar="FILE",
                   help="data file to classify (.csv, .tsv, .jsonl, .json, .parquet) instead of TEXT arguments "
                        "(default: none)")
    p.add_argument("--text-column", default="text", metavar="COL",
                   help="column of --input-file with the texts (default: %(default)s)")
    p.add_argument("--text-b-column", default=None, metavar="COL",
                   help="column of --input-file with the second text of sentence pairs (default: none)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the rows plus 'label' and one 'p_<label>' column per class to FILE: .csv, .tsv "
                        "or .jsonl (JSON lines). If the input already has such columns, the new ones are named "
                        f"'{PREFIX}label', '{PREFIX}p_<label>'. (default: none, print JSON lines to stdout)")
    add_common_arguments(p)
    return p


def prediction_frame(rows: pd.DataFrame, probabilities: np.ndarray, predicted: list[str], labels: list[str]):
    """``rows`` plus the prediction columns ``label`` and ``p_<label>``; prefixed if those names are taken."""
    new = ["label"] + [f"p_{name}" for name in labels]
    prefix = PREFIX if set(new) & set(map(str, rows.columns)) else ""
    out = rows.copy()
    out[prefix + "label"] = predicted
    for j, name in enumerate(labels):
        out[f"{prefix}p_{name}"] = probabilities[:, j]
    return out, prefix


def _short_floats(a: np.ndarray) -> list:
    # float32 -> shortest decimal that round-trips (0.8, not 0.800000011920929).
    return np.asarray(a, dtype=np.float32).astype(str).astype(float).tolist()


def _json_line(record: dict) -> str:
    from tfbert.reports import _clean, _json_default

    def default(o):
        try:
            return _json_default(o)
        except TypeError:  # e.g. timestamps from a Parquet input: keep them readable
            return str(o)

    return json.dumps(_clean(record), ensure_ascii=False, default=default, allow_nan=False)


def _run(args) -> int:
    from tfbert.serving import read_labels, resolve_model_dir

    if bool(args.texts) == bool(args.input_file):
        raise ValueError("give either TEXT arguments or --input-file (see --help).")
    if args.input_file and args.text_b:
        raise ValueError("--text-b is for TEXT arguments; with --input-file use --text-b-column.")
    if args.texts and args.text_b_column:
        raise ValueError("--text-b-column is for --input-file; with TEXT arguments use --text-b.")
    if args.text_b and len(args.text_b) != len(args.texts):
        raise ValueError(f"got {len(args.texts)} TEXT arguments but {len(args.text_b)} --text-b; give one per TEXT.")
    if args.output and Path(args.output).suffix.lower() not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--output {args.output}: unsupported extension; use one of {', '.join(OUTPUT_EXTENSIONS)}.")

    model_dir = resolve_model_dir(args.model)
    read_labels(model_dir)  # fail fast (before importing TensorFlow) when assets/labels.txt is missing
    if args.input_file:
        rows = read_table(args.input_file)
        print_notes(rows)
        require_columns(rows, args.input_file, {"--text-column": args.text_column,
                                                "--text-b-column": args.text_b_column})
        texts = _as_text(rows[args.text_column]).tolist()
        texts_b = _as_text(rows[args.text_b_column]).tolist() if args.text_b_column else None
    else:
        texts, texts_b = list(args.texts), args.text_b
        rows = pd.DataFrame({"text": texts, **({"text_b": texts_b} if texts_b else {})})

    from tfbert.serving import ExportedClassifier  # loads TensorFlow: only after the inputs checked out

    clf = ExportedClassifier(model_dir)
    if texts_b is None and clf.has_pairs:
        print("note: the model was trained on sentence pairs; pass the second texts with "
              "--text-b/--text-b-column (classifying single texts).", file=sys.stderr)
    probs, _, predicted = clf.predict(texts, texts_b, batch_size=args.batch_size)

    if not args.output:
        for i, (text, label, p) in enumerate(zip(texts, predicted, _short_floats(probs))):
            record = {"text": text, **({"text_b": texts_b[i]} if texts_b is not None else {}),
                      "label": label, "probabilities": dict(zip(clf.labels, p))}
            print(_json_line(record))
        return 0

    from tfbert.reports import _atomic_write

    out, prefix = prediction_frame(rows, probs, predicted, clf.labels)
    if prefix:
        print(f"note: the input already has a 'label' or 'p_*' column; prediction columns are named "
              f"'{prefix}label', '{prefix}p_<label>'.", file=sys.stderr)
    ext = Path(args.output).suffix.lower()
    if ext == ".jsonl":
        p_cols = [f"{prefix}p_{name}" for name in clf.labels]
        out[p_cols] = pd.DataFrame(_short_floats(probs), columns=p_cols, index=out.index)
        text = "".join(_json_line(r) + "\n" for r in out.to_dict("records"))
        _atomic_write(args.output, lambda f: f.write(text))
    else:
        _atomic_write(args.output, lambda f: out.to_csv(f, index=False, sep="," if ext == ".csv" else "\t"))
    print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
