"""Distil a trained classifier into a smaller, faster one: the student learns the teacher's answers and the labels.

    python -m tfbert.distill --teacher saved_models/sentiment                 # the teacher's data, half its layers
    python -m tfbert.distill --teacher saved_models/sentiment --encoder-layers 2 --model-name tiny
    python -m tfbert.distill --teacher saved_models/my_model --train-file more.csv --distill-temperature 1

A distillation run is `python -m tfbert.train` with --teacher (tfbert.distillation: the loss, and how the teacher's
probabilities become soft targets). This command fills in what the teacher already says, unless a flag says
otherwise: its task, data and input settings (files, columns, --max-seq-length, --long-texts, --seed), its base
encoder, and a student of half that encoder's transformer layers, every other one from the bottom up (--encoder-layers N
--layer-selection spread, as DistilBERT does). The student is written to OUTPUT_DIR/<teacher's model name>-student
and serves like any classifier export; its metadata names the teacher.
"""
from __future__ import annotations

import sys

from tfbert.config import ConfigError, config_from_args, make_config
from tfbert.encoders.registry import DEFAULT_ENCODER

__all__ = ["main", "build_parser", "student_settings"]

# The teacher's settings a student takes over unless a flag overrides them: the same task on the same data, read
# the same way, from the same base encoder.
INHERITED = ("task", "train_file", "valid_file", "test_file", "train_dir", "valid_dir", "test_dir", "text_column",
             "text_b_column", "label_column", "max_train_examples", "encoder", "preprocess", "max_seq_length",
             "long_texts", "window_stride", "max_windows", "window_pooling", "seed", "output_dir")


def build_parser():
    from tfbert.config import build_parser as config_parser
    from tfbert.tasks import CATALOG
    ap = config_parser(CATALOG, description=__doc__)
    ap.prog = "python -m tfbert.distill"
    return ap


def student_settings(given: dict, log=print) -> dict:
    """The run's settings: the teacher's (INHERITED), a half-depth spread student, then the flags `given`."""
    from tfbert.distillation import Teacher
    from tfbert.encoders.checkpoint import read_checkpoint
    from tfbert.encoders.registry import EMBEDDED, convertible

    if "teacher" not in given:
        raise ConfigError("--teacher EXPORT is required: the classifier export to distil (e.g. saved_models/sentiment)")
    teacher = Teacher(given["teacher"])
    settings = {k: v for k, v in teacher.metadata.get("settings", {}).items() if k in INHERITED}
    settings["model_name"] = f"{teacher.path.parent.name}-student"
    settings.update(given)
    encoder = settings.get("encoder", DEFAULT_ENCODER)
    if "encoder_layers" not in given:
        if convertible(encoder):
            total = read_checkpoint(EMBEDDED.get(encoder, encoder)).config.num_layers
            if total > 1:
                settings.update(encoder_layers=total // 2, layer_selection=given.get("layer_selection", "spread"))
        else:
            log(f"distill: the student keeps every layer of {encoder}: tfbert cannot drop layers of a saved TF Hub "
                "model (give --encoder an embedded name or a Hugging Face checkpoint directory)")
    log(f"distill: teacher {teacher.path} ({settings.get('task')}); student: "
        f"{settings.get('encoder_layers') or 'all'} transformer layers of {settings.get('encoder')}"
        f"{' (' + settings['layer_selection'] + ')' if settings.get('encoder_layers') else ''}")
    return settings


def main(argv=None) -> int:
    from tfbert.cli import run_cli
    from tfbert.data.tables import DataError
    from tfbert.encoders.checkpoint import CheckpointError
    from tfbert.encoders.registry import EncoderError
    from tfbert.fit import fit

    def run(args):
        given = vars(args).copy()
        if "config" in given:  # a run folder's config.json reproduces a distillation run as it was
            fit(config_from_args(args))
            return
        fit(make_config(student_settings(given)))

    return run_cli(build_parser(), run, argv, errors=(ConfigError, DataError, EncoderError, CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
