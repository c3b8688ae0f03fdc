"""Evaluate an exported tfbert model (any task) on a labelled data file.

    python -m tfbert.evaluate --model saved_models/sentiment --test-file test.csv [--output metrics.json]
    python -m tfbert.evaluate --model saved_models/ner --test-file test.conll

The export says what it is (assets.extra/tfbert.json) and its client (tfbert/serving/<kind>.py) reads the file:
a classifier a table (text and label columns: accuracy, macro/weighted F1, per-class scores, confusion matrix,
log-loss, Brier score, expected calibration error; --plots DIR draws the confusion matrix and reliability diagram); a
tagger CoNLL or JSONL (entity-level scores); a regressor a table with a numeric label (Pearson, Spearman, MAE,
RMSE); a multi-label model a table of label sets (micro/macro F1, per-label scores, subset accuracy). The file, its
columns and its labels are checked before TensorFlow is loaded. `--text-column title,body` joins several columns as
training does. Progress over big files goes to stderr (tfbert.progress; --quiet turns it off).
"""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import add_common_arguments, note, run_cli

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfbert.evaluate",
        description="Evaluate an exported tfbert model on a labelled file: classifiers, regressors and multi-label "
                    "models read a table (.csv, .tsv, .jsonl, .json, .parquet), taggers CoNLL or JSONL; prints the "
                    "task's metrics (accuracy and F1, correlations and errors, entity scores).",
    )
    p.add_argument("--model", required=True, metavar="DIR",
                   help="SavedModel version directory, or a model base directory (its highest integer version "
                        "is used) (required)")
    p.add_argument("--test-file", required=True, metavar="FILE", help="labelled data file (required)")
    p.add_argument("--text-column", default="text", metavar="COL",
                   help="column with the texts; several, comma-separated (title,body), are joined with ' | ' as in "
                        "training (default: %(default)s)")
    p.add_argument("--label-column", default="label", metavar="COL",
                   help="column with the true labels, as named in the model's label list (default: %(default)s)")
    p.add_argument("--text-b-column", default=None, metavar="COL",
                   help="column with the second text of sentence pairs, or several comma-separated to join; needs "
                        "a model exported with pairs (default: none, single texts)")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="also write the metrics as JSON to FILE (default: none, print only)")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="also draw the task's plots as PNGs into DIR (classifiers: confusion_matrix.png, "
                        "reliability.png) (default: none)")
    p.add_argument("--head", default=None, metavar="NAME",
                   help="a multitask model's head (its task's name, or the name its --tasks-file gave it) to "
                        "evaluate on --test-file; required for a multitask model (default: none)")
    add_common_arguments(p)
    return p


def _run(args) -> int:
    from tfbert.files import write_json
    from tfbert.serving import load

    model = load(args.model, head=args.head)  # reads the export's metadata; TensorFlow loads on first use
    metrics, report = model.evaluate_file(args.test_file, text_column=args.text_column,
                                          label_column=args.label_column, text_b_column=args.text_b_column,
                                          batch_size=args.batch_size, note=note)
    print(f"model: {model.path}\ntest file: {args.test_file}\n")
    print(report)
    if args.output:
        write_json(args.output, {"model": str(model.path), "test_file": str(args.test_file), **metrics})
        print(f"wrote {args.output}", file=sys.stderr)
    if args.plots:
        written = model.write_plots(metrics, args.plots)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        if not written:
            note(f"no plots for a {model.metadata.get('serving', 'classifier')} model; --plots ignored")
    return 0


def main(argv=None) -> int:
    return run_cli(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
