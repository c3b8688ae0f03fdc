"""Continued pre-training of an encoder on your own unlabelled text: masked LM, with next-sentence (NSP) or
sentence-order (SOP) prediction.

    python -m tfbert.pretrain --train-file texts.txt --encoder minilm-l6 --output adapted
    python -m tfbert.train --encoder adapted ...          # then fine-tune its latest version
    python -m tfbert.pretrain --config adapted/runs/1/config.json   # reproduce a run

The job is the task `mlm` of the one training loop (tfbert.tasks.mlm, tfbert.fit): an interrupted run resumes
when started again with the same settings, --strategy distributes it, progress lines and TensorBoard logs are
those of every task. Writes OUTPUT/<version>/ (preprocess/: the base encoder's, unchanged; encoder/: the adapted
encoder with TF Hub's `mlm` sub-object, masked_lm_positions in, mlm_logits (and next_sentence_logits) out;
tfbert.json: base encoder, objectives, steps, masking and sequence settings, held-out masked-token and pair accuracy
before and after), published whole or not at all, and its run folder OUTPUT/runs/<version>/.

Documents: a line of a text file, or a table row (--document-column: consecutive rows with the same value are one
document, a row one segment); a document's segments are its sentences (split after . ! ? before white space, and
at line breaks). Objectives (--objectives): mlm, or mlm plus a pair objective on pooled_output: nsp (B is the
segments after A, or from another document, even odds) or sop (A and B in order or swapped); auto picks mlm,nsp
when at least half the training documents have two or more segments. Sequences (--packing): pairs are cut from
one document (BERT's create_pretraining_data recipe); masked LM alone fills a sequence with a document's
consecutive segments (document: a long document becomes several sequences, not cut), with several documents
(full), or takes one document per sequence, cut (none).

Masking: BERT's (--mask-share of the wordpieces chosen, of those 80% [MASK], 10% a random id, 10% kept; never
[CLS], [SEP] or padding), or whole words with --whole-word-masking; drawn anew each epoch, repeatable for --seed.
Sequences are built once for --seed. The held-out documents (--valid-file, else --valid-share of the train file)
are built and masked once, the same for the before and after figures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["pretrain", "main", "build_parser", "settings_from_args"]

# The command's defaults where they differ from tfbert.train's: one pass, no step floor.
DEFAULTS = dict(task="mlm", epochs=1, min_steps=0, batch_size=32, learning_rate=5e-5, max_seq_length=128, seed=0,
                warmup_fraction=0.1)
# flag -> setting, where the names differ
_RENAMED = {"warmup": "warmup_fraction"}


def pretrain(train_file, output, *, log=print, **settings) -> dict:
    """Runs continued MLM pre-training into the next version under `output`; returns the new pair's metadata
    (its tfbert.json, with "export": the version folder). `settings`: the command's flags as keywords
    (encoder=..., epochs=..., mask_share=..., strategy=...)."""
    settings = {_RENAMED.get(k, k): v for k, v in settings.items()}
    return run({**DEFAULTS, "train_file": str(train_file), **_output_settings(output), **settings}, log)


def run(settings: dict, log=print) -> dict:
    import json

    from tfbert.config import make_config
    from tfbert.encoders.convert import METADATA_FILE
    from tfbert.fit import fit

    summary = fit(make_config(settings), log=log)
    return {**json.loads((Path(summary["export"]) / METADATA_FILE).read_text()), "export": summary["export"]}


def _output_settings(output) -> dict:
    output = Path(output)
    return {"output_dir": str(output.parent), "model_name": output.name}


def build_parser() -> argparse.ArgumentParser:
    from tfbert.cli import positive_int
    from tfbert.config import CommandParser
    from tfbert.data.instances import PACKING
    from tfbert.distribute import STRATEGIES
    from tfbert.tasks.catalog import DEFAULT_MAX_VALID, OBJECTIVES

    ap = CommandParser(prog="python -m tfbert.pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 argument_default=argparse.SUPPRESS)
    ap.add_argument("--config", metavar="FILE", help="JSON settings (a run folder's config.json reproduces that "
                                                     "run); flags given beside it override it")
    ap.add_argument("--train-file", help="unlabelled documents: one per line (UTF-8; invalid bytes replaced), or a "
                    ".csv/.tsv/.jsonl/.json/.parquet table with --text-column (required, unless in --config)")
    ap.add_argument("--valid-file", help="held-out documents for the before/after masked-token and pair accuracy "
                    "(default: --valid-share of the train file, at most --max-valid documents)")
    ap.add_argument("--text-column", help="a table's text column, or columns joined: title,body (default: text)")
    ap.add_argument("--encoder", help="base encoder: a registered embedded name, a converted pair directory (also "
                    "an earlier pretrain output) or a Hugging Face BERT checkpoint directory (default: minilm-l6)")
    ap.add_argument("--output", help="model base directory: gets the next version OUTPUT/<N>/ (an encoder pair) "
                    "and its run folder OUTPUT/runs/<N>/ (required, unless in --config)")
    ap.add_argument("--epochs", type=positive_int, help=f"(default: {DEFAULTS['epochs']})")
    ap.add_argument("--max-steps", type=positive_int, help="stop after about this many steps, in equal epochs of "
                    "at most one pass each (default: --epochs full passes)")
    ap.add_argument("--batch-size", type=positive_int, help=f"(default: {DEFAULTS['batch_size']})")
    ap.add_argument("--learning-rate", type=float, help="peak AdamW rate, after a linear warm-up over --warmup of "
                    f"the steps, then linear decay (default: {DEFAULTS['learning_rate']})")
    ap.add_argument("--warmup", type=float, help=f"(default: {DEFAULTS['warmup_fraction']})")
    ap.add_argument("--max-seq-length", type=positive_int, help="wordpieces per sequence with [CLS] and [SEP]; "
                    f"pairs and --packing none cut what does not fit (default: {DEFAULTS['max_seq_length']})")
    ap.add_argument("--mask-share", type=float, help="share of wordpieces predicted; of those 80%% [MASK], 10%% "
                    "random, 10%% kept (default: 0.15)")
    ap.add_argument("--objectives", choices=("auto", *OBJECTIVES),
                    help="masked LM alone or with a pair objective on pooled_output: nsp (next sentence) or sop "
                    "(sentence order); auto: mlm,nsp when at least half the training documents have two or more "
                    "segments (default: auto)")
    ap.add_argument("--packing", choices=PACKING,
                    help="how masked-LM sequences are filled: document (a document's consecutive segments, a long "
                    "one split over several sequences), full (consecutive documents too, a [SEP] between them) or "
                    "none (one document per sequence, cut); pairs always come from one document (default: document)")
    ap.add_argument("--document-column", help="a table's document column: consecutive rows with the same value are "
                    "one document, each row a segment (default: each text is a document, its sentences the segments)")
    ap.add_argument("--whole-word-masking", action="store_true",
                    help="choose whole words: all wordpieces of a chosen word are predicted (default: off)")
    ap.add_argument("--valid-share", type=float, help="(default: 0.1)")
    ap.add_argument("--max-valid", type=positive_int, help=f"(default: {DEFAULT_MAX_VALID})")
    ap.add_argument("--patience", type=positive_int, help="epochs without a lower held-out masked-LM loss "
                    "before stopping (default: 3)")
    ap.add_argument("--seed", type=int, help="seeds the split, shuffling, masks, head initialisation and dropout "
                    f"(default: {DEFAULTS['seed']})")
    ap.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy; --batch-size is the global "
                    "batch (default: default)")
    ap.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras progress: 1 = bars, 2 = a line per "
                    "epoch (default: 1 on a terminal, else 2)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr (default: shown)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap


def settings_from_args(args: argparse.Namespace) -> dict:
    """The run's settings: the command's defaults <- --config <- the flags given."""
    from tfbert.config import ConfigError, read_config_file

    given = {k: v for k, v in vars(args).items() if k != "quiet"}
    settings = dict(DEFAULTS)
    if "config" in given:
        settings.update(read_config_file(given.pop("config")))
    if "output" in given:
        settings.update(_output_settings(given.pop("output")))
    settings.update({_RENAMED.get(k, k): v for k, v in given.items()})
    for name, flag in (("train_file", "--train-file"), ("model_name", "--output")):
        if settings.get(name) is None:
            raise ConfigError(f"{flag} is required (or a --config file that has it)")
    if settings.get("task") != "mlm":
        raise ConfigError(f"--config: task {settings.get('task')!r} is not pre-training (mlm); use "
                          "python -m tfbert.train for it")
    return settings


def main(argv=None) -> int:
    from tfbert.cli import run_cli
    from tfbert.config import ConfigError
    from tfbert.data.tables import DataError
    from tfbert.encoders.checkpoint import CheckpointError
    from tfbert.encoders.registry import EncoderError

    return run_cli(build_parser(), lambda a: run(settings_from_args(a)) and 0, argv,
                   errors=(ConfigError, DataError, EncoderError, CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
