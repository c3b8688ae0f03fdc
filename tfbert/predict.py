"""Run an exported tfbert model (any task) on texts.

    python -m tfbert.predict --model saved_models/sentiment "great day" "awful service"
    python -m tfbert.predict --model saved_models/sentiment --input-file tweets.csv --output predictions.csv
    python -m tfbert.predict --model saved_models/ner "John Smith flew to Paris"
    python -m tfbert.predict --model saved_models/qa "Which place is mentioned?" --text-b "Flying to Paris !"

Texts on the command line (or a file without --output) print one JSON object per line: the text and the
model's answer, which the export's serving kind decides (tfbert/serving/<kind>.py): a classifier's
{"label": ..., "probabilities": {label: p}}, a tagger's {"entities": [{"text", "type", "start", "end", "score"}]},
a regressor's {"score": ...}, a multi-label model's {"labels": [...], "probabilities": {...}}, a QA model's
{"answer", "start", "end", "score"} (TEXT is the question, --text-b its context). With --output, the
input rows are written back with the answer's columns (e.g. ``label`` and one ``p_<label>`` per class) to
.csv/.tsv or .jsonl. Notes and progress (tfbert.progress; --quiet turns it off) go to stderr, so stdout holds
nothing but the answers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from tfbert.cli import add_common_arguments, note, run_cli
from tfbert.data.tables import joined_text, read_table
from tfbert.files import atomic_write, clean_json, json_default, write_table

__all__ = ["main", "build_parser", "prediction_frame"]

OUTPUT_EXTENSIONS = (".csv", ".tsv", ".jsonl")
PREFIX = "predicted_"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfbert.predict",
        description="Run an exported tfbert model on texts. Give texts as arguments or --input-file.",
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to run the model on (default: none; then --input-file)")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="SavedModel version directory, or a model base directory (its highest integer version "
                        "is used) (required)")
    p.add_argument("--text-b", action="append", default=None, metavar="TEXT",
                   help="second text of a sentence pair (QA: the context of the question), once per TEXT in the "
                        "same order; needs a model exported with pairs or a QA model (default: none)")
    p.add_argument("--input-file", default=None, metavar="FILE",
                   help="data file to run the model on (.csv, .tsv, .jsonl, .json, .parquet) instead of TEXT arguments "
                        "(default: none)")
    p.add_argument("--text-column", default="text", metavar="COL",
                   help="column of --input-file with the texts; several, comma-separated (title,body), are joined "
                        "with ' | ' as in training (default: %(default)s)")
    p.add_argument("--text-b-column", default=None, metavar="COL",
                   help="column of --input-file with the second text of sentence pairs (default: none)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the rows plus the model's answer columns (classifier: 'label' and one 'p_<label>' "
                        "per class; tagger: 'entities'; regressor: 'score'; multi-label: 'labels' and 'p_<label>') "
                        "to FILE: .csv, .tsv or .jsonl (JSON lines). If the input "
                        f"already has such columns, the new ones are prefixed '{PREFIX}'. (default: none, print JSON "
                        "lines to stdout)")
    p.add_argument("--head", default=None, metavar="NAME",
                   help="a multitask model's head (its task's name, or the name its --tasks-file gave it) to "
                        "run alone (default: none; a multitask model answers with every head, keyed by head name)")
    add_common_arguments(p)
    return p


def prediction_frame(rows: pd.DataFrame, columns: dict[str, list]):
    """``rows`` plus the prediction ``columns``, all prefixed if any of their names is taken."""
    prefix = PREFIX if set(columns) & set(map(str, rows.columns)) else ""
    out = rows.copy()
    for name, values in columns.items():
        out[prefix + name] = values
    return out, prefix


def _json_line(record: dict) -> str:
    def default(o):
        try:
            return json_default(o)
        except TypeError:  # e.g. timestamps from a Parquet input: keep them readable
            return str(o)

    return json.dumps(clean_json(record), ensure_ascii=False, default=default, allow_nan=False)


def _utf8_argument(value: str, what: str) -> str:
    """A command-line text as UTF-8: bytes that are not (Python keeps them as surrogates) become U+FFFD, with a note
    naming the argument, as data files' bad bytes do."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError as e:
        fixed = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        note(f"{what} is not valid UTF-8 (from character {e.start}); its bad bytes were replaced by U+FFFD")
        return fixed


def _run(args) -> int:
    from tfbert.serving import load

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

    model = load(args.model, head=args.head)  # reads the export's metadata; TensorFlow loads on first use
    if args.input_file:
        rows = read_table(args.input_file)
        for n in rows.attrs.get("notes", []):
            note(n)
        texts = joined_text(rows, args.text_column, args.input_file).tolist()
        texts_b = joined_text(rows, args.text_b_column, args.input_file, "text_b_column").tolist() \
            if args.text_b_column else None
    else:
        texts = [_utf8_argument(t, f"TEXT argument {i}") for i, t in enumerate(args.texts, 1)]
        texts_b = [_utf8_argument(t, f"--text-b {i}") for i, t in enumerate(args.text_b, 1)] if args.text_b else None
        rows = pd.DataFrame({"text": texts, **({"text_b": texts_b} if texts_b else {})})
    records = model.predict_records(texts, texts_b, batch_size=args.batch_size)

    if not args.output:
        for i, (text, record) in enumerate(zip(texts, records)):
            print(_json_line({"text": text, **({"text_b": texts_b[i]} if texts_b is not None else {}), **record}))
        return 0

    columns = model.prediction_columns(records)
    out, prefix = prediction_frame(rows, columns)
    if prefix:
        note(f"the input already has a column named like a prediction column; the predictions are written as "
             f"{', '.join(prefix + c for c in columns)}.")
    ext = Path(args.output).suffix.lower()
    if ext == ".jsonl":
        text = "".join(_json_line(r) + "\n" for r in out.to_dict("records"))
        atomic_write(args.output, lambda f: f.write(text))
    else:
        write_table(args.output, out)  # quoted, so texts holding \r, tabs or quotes read back as the same rows
    print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
