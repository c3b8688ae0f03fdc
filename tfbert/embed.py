"""`python -m tfbert.embed`: export an encoder as a sentence-embedding SavedModel for similarity search.

    python -m tfbert.embed --output saved_models/embedding                 # the embedded default (MiniLM-L6)
    python -m tfbert.embed --encoder DIR_OR_HANDLE --output OUT            # any encoder tfbert.train accepts
    python -m tfbert.embed --run saved_models/regression/runs/1 --output OUT   # a fine-tuned run's encoder

Writes OUT/<version>/ (TF Serving layout): serving_default(text) -> embedding float32[batch, hidden] (mean over
real tokens, L2-normalised) and serving_similarity(text, text_b) -> similarity (cosine). The default encoder is a
sentence-embedding model trained with exactly this pooling; a fine-tuned run's encoder (any task: a regression on
sentence pairs suits similarity best) is read from the run folder's best checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tfbert.cli import run_cli

__all__ = ["main", "build_parser", "export_embeddings"]

# sentence-transformers' max_seq_length for the default checkpoint (its sentence_bert_config.json).
DEFAULT_MAX_SEQ_LENGTH = 256


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tfbert.embed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="saved_models/embedding", metavar="DIR",
                   help="model base directory; the export goes to its next integer version (default: %(default)s)")
    p.add_argument("--encoder", default=None,
                   help="registered name, converted pair or Hugging Face checkpoint directory, or TF Hub handle "
                        "(with --preprocess) (default: minilm-l6)")
    p.add_argument("--preprocess", default=None, help="preprocess handle for an --encoder URL or directory")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="a tfbert.train run folder (<output-dir>/<model-name>/runs/<version>): export its "
                        "fine-tuned encoder instead (default: none)")
    p.add_argument("--max-seq-length", type=int, default=None,
                   help=f"wordpieces per text, longer texts are cut (default: the run's, else "
                        f"{DEFAULT_MAX_SEQ_LENGTH})")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                   help="encoder precision for --encoder (default: %(default)s: embeddings match the reference "
                        "within 1e-4; bf16 is faster on CPUs with bf16 matmuls)")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    return p


def run_encoder(run_dir: Path) -> tuple[dict, dict, str]:
    """(settings, facts, checkpoint) of a finished or interrupted training run folder, checked."""
    config, facts, best = run_dir / "config.json", run_dir / "run.json", run_dir / "checkpoints" / "best"
    for path in (config, facts, Path(f"{best}.index")):
        if not path.is_file():
            raise ValueError(f"--run {run_dir}: no {path.relative_to(run_dir)} there (a tfbert.train run folder "
                             "holds config.json, run.json and checkpoints/best)")
    return json.loads(config.read_text()), json.loads(facts.read_text()), str(best)


def export_embeddings(output: str | Path, *, encoder: str | None = None, preprocess: str | None = None,
                      run: str | Path | None = None, max_seq_length: int | None = None, precision: str = "fp32",
                      log=print) -> Path:
    """The public API behind the CLI; returns the version directory written."""
    from tfbert.encoders.convert import encoder_metadata
    from tfbert.encoders.layer import encoder_layer, restore_encoder_weights
    from tfbert.encoders.registry import DEFAULT_ENCODER, resolve_encoder
    from tfbert.export.embedder import export_embedder

    if run is not None:
        if encoder is not None or preprocess is not None:
            raise ValueError("give --run or --encoder/--preprocess, not both: a run names its own encoder")
        settings, facts, checkpoint = run_encoder(Path(run))
        handles = facts["encoder_handles"]
        preprocess_handle, encoder_handle = handles["preprocess"], handles["encoder"]
        max_seq_length = max_seq_length or settings["max_seq_length"]
        source = {"run": str(run), "run_task": settings.get("task"), "checkpoint": checkpoint}
    else:
        resolved = resolve_encoder(encoder or DEFAULT_ENCODER, preprocess, log=log, precision=precision)
        preprocess_handle, encoder_handle = resolved.preprocess, resolved.encoder
        max_seq_length = max_seq_length or DEFAULT_MAX_SEQ_LENGTH
        source = {"precision": resolved.precision}
    limit = encoder_metadata(encoder_handle).get("config", {}).get("max_position_embeddings")
    if max_seq_length < 3 or (limit and max_seq_length > limit):
        raise ValueError(f"--max-seq-length {max_seq_length} must be from 3 to the encoder's {limit or 512} positions")

    layer = encoder_layer(encoder_handle)
    if run is not None:
        log(f"loaded {restore_encoder_weights(layer, checkpoint)} fine-tuned encoder variables from {checkpoint}")
    log(f"encoder: {encoder_handle}; mean pooling over at most {max_seq_length} wordpieces")
    return export_embedder(layer, preprocess_handle, output, max_seq_length=max_seq_length,
                           metadata={"encoder": encoder_handle, "preprocess": preprocess_handle, **source}, log=log)


def main(argv=None) -> int:
    def run(args):
        export_embeddings(args.output, encoder=args.encoder, preprocess=args.preprocess, run=args.run,
                          max_seq_length=args.max_seq_length, precision=args.precision)
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
