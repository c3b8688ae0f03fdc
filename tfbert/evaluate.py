"""Evaluate an exported tfbert model on a labelled data file.

    python -m tfbert.evaluate --model saved_models/sentiment --test-file test.csv [--output metrics.json]

The file, its columns and its labels are checked against the model's ``assets/labels.txt``
before TensorFlow is loaded, so data mistakes are reported in well under a second.
Also home of the helpers the predict CLI shares (column checks, error handling).
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from tfbert.cli import run_cli
from tfbert.data_tables import DataError, _as_text, _is_missing_label, _normalize_labels, _row_refs, read_table

__all__ = ["main", "build_parser", "label_ids", "require_columns", "run_cli"]

_MAX_LISTED = 20


# --------------------------------------------------------------------------- shared CLI helpers


def require_columns(df: pd.DataFrame, source, columns: dict) -> None:
    """Raise DataError naming the flag and the file's columns when a requested column is missing.

    ``columns`` maps a flag (e.g. "--text-column") to the column name; None values are skipped.
    """
    present = list(df.columns)
    for flag, col in columns.items():
        if col is not None and col not in present:
            raise DataError(
                f"{source}: no column {col!r} ({flag}). Columns in the file: "
                f"{', '.join(repr(c) for c in present)}. Pass the right name with {flag} NAME."
            )


def print_notes(df: pd.DataFrame) -> None:
    for note in df.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                        help="texts per model call (default: %(default)s)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors instead of a one-line message (default: off)")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


# --------------------------------------------------------------------------- labels


def label_ids(values: pd.Series, labels: list[str], source, column: str, *, rows=None,
              lines_before_data=None) -> pd.Series:
    """Map a label column to the model's label ids.

    Labels are compared as strings after the normalisation training applies (integer-valued
    numbers such as 1, 1.0 or "1" all become "1"). Empty labels or labels the model does not
    know raise a DataError that lists them with their rows; ``rows`` are the 1-based data row
    numbers of ``values`` in the file (default 1..n).
    """
    values = values.reset_index(drop=True)
    rows = pd.Series(range(1, len(values) + 1) if rows is None else list(rows))
    missing = values.map(_is_missing_label).astype(bool)
    if missing.any():
        raise DataError(
            f"{source}: label column {column!r} is empty in {int(missing.sum())} of {len(values)} rows: "
            f"{_row_refs(rows[missing], lines_before_data)}. Fill in the labels or remove those rows."
        )
    names, _ = _normalize_labels(values, source, column)
    known = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(names) - set(known))
    if unknown:
        bad = names.isin(unknown)
        raise DataError(
            f"{source}: labels the model does not know: {', '.join(map(repr, unknown[:_MAX_LISTED]))}"
            f"{' ...' if len(unknown) > _MAX_LISTED else ''} ({int(bad.sum())} rows: "
            f"{_row_refs(rows[bad], lines_before_data)}). The model's labels are "
            f"{', '.join(map(repr, labels[:_MAX_LISTED]))}{' ...' if len(labels) > _MAX_LISTED else ''}. "
            f"Check --label-column, or fix or remove those rows."
        )
    return names.map(known).astype("int64")


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfbert.evaluate",
        description="Evaluate an exported tfbert model on a labelled file (.csv, .tsv, .jsonl, .json, .parquet): "
                    "prints accuracy, macro/weighted F1, per-class scores and the confusion matrix.",
    )
    p.add_argument("--model", required=True, metavar="DIR",
                   help="SavedModel version directory, or a model base directory (its highest integer version "
                        "is used) (required)")
    p.add_argument("--test-file", required=True, metavar="FILE", help="labelled data file (required)")
    p.add_argument("--text-column", default="text", metavar="COL", help="column with the texts (default: %(default)s)")
    p.add_argument("--label-column", default="label", metavar="COL",
                   help="column with the true labels, as named in the model's assets/labels.txt "
                        "(default: %(default)s)")
    p.add_argument("--text-b-column", default=None, metavar="COL",
                   help="column with the second text of sentence pairs; needs a model exported with pairs "
                        "(default: none, single texts)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="also write the metrics as JSON to FILE (default: none, print only)")
    add_common_arguments(p)
    return p


def _run(args) -> int:
    from tfbert.reports import classification_metrics, format_report, write_json
    from tfbert.serving import read_labels, resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    labels = read_labels(model_dir)
    df = read_table(args.test_file)
    print_notes(df)
    require_columns(df, args.test_file, {"--text-column": args.text_column, "--label-column": args.label_column,
                                         "--text-b-column": args.text_b_column})
    text_cols = [args.text_column] + ([args.text_b_column] if args.text_b_column else [])
    texts = {c: _as_text(df[c]) for c in text_cols}
    # Training drops rows with empty text from test files too; do the same so numbers agree.
    empty = pd.Series(False, index=df.index)
    for c in text_cols:
        empty |= ~texts[c].str.strip().astype(bool)
    if empty.all():
        raise DataError(f"{args.test_file}: the text in {' / '.join(map(repr, text_cols))} is empty in every row.")
    if empty.any():
        print(f"note: skipped {int(empty.sum())} of {len(df)} rows with empty text: "
              f"{_row_refs(df.index[empty] + 1, df.attrs.get('lines_before_data'))}.",
              file=sys.stderr)
    keep = ~empty
    y_true = label_ids(df.loc[keep, args.label_column], labels, args.test_file, args.label_column,
                       rows=(df.index[keep] + 1), lines_before_data=df.attrs.get("lines_before_data"))

    from tfbert.serving import ExportedClassifier  # loads TensorFlow: only after the data checked out

    clf = ExportedClassifier(model_dir)
    if clf.has_pairs and not args.text_b_column:
        print("note: the model was trained on sentence pairs; pass --text-b-column to evaluate pairs "
              "(evaluating single texts).", file=sys.stderr)
    texts_b = texts[args.text_b_column][keep].tolist() if args.text_b_column else None
    _, y_pred, _ = clf.predict(texts[args.text_column][keep].tolist(), texts_b, batch_size=args.batch_size)
    metrics = classification_metrics(y_true.to_numpy(), y_pred, labels)
    print(f"model: {clf.path}\ntest file: {args.test_file}\n")
    print(format_report(metrics))
    if args.output:
        write_json(args.output, {"model": str(clf.path), "test_file": str(args.test_file), **metrics})
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
