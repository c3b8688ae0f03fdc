"""Fine-tune a TF Hub BERT encoder on a text task and export a SavedModel that serves raw text.

    python -m tfbert.train --task sentiment                       # built-in tweets, embedded MiniLM encoder
    python -m tfbert.train --task classify --train-file data.csv --text-column review --label-column stars
    python -m tfbert.train --task ner                             # built-in Twitter NER corpus
    python -m tfbert.train --config saved_models/sentiment/runs/1/config.json   # reproduce a run

Writes <output-dir>/<model-name>/<version>/ (the SavedModel) and <output-dir>/<model-name>/runs/<version>/
(config, metrics, plots, TensorBoard logs). An interrupted run resumes when started again with the same command.
"""
from __future__ import annotations

import sys

from tfbert.config import ConfigError, RunConfig, config_from_args, make_config
from tfbert.config import build_parser as _config_parser
from tfbert.fit import fit
from tfbert.tasks import CATALOG

__all__ = ["fine_tune", "build_parser", "parse_config", "main"]


def build_parser():
    return _config_parser(CATALOG, description=__doc__)


def parse_config(argv) -> RunConfig:
    """The RunConfig of a command line (flags over --config over the defaults)."""
    return config_from_args(build_parser().parse_args(argv))


def fine_tune(log=print, **settings) -> dict:
    """The whole job as a function: `settings` are the CLI flags as keywords (train_file=..., epochs=...).

    Unknown names raise TypeError; defaults are the CLI's. Returns the summary (export path, test metrics, run dir).
    """
    return fit(make_config(settings), log=log)


def main(argv=None) -> int:
    from tfbert.cli import run_cli
    from tfbert.data.tables import DataError
    from tfbert.encoders.checkpoint import CheckpointError
    from tfbert.encoders.registry import EncoderError

    def run(args):
        fit(config_from_args(args))  # its summary is for API callers; the CLI's result is the exit code

    return run_cli(build_parser(), run, argv, errors=(ConfigError, DataError, EncoderError, CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
