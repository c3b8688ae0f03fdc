"""Continued masked-language-model pre-training of an encoder on your own unlabelled text.

    python -m tfbert.pretrain --train-file texts.txt --encoder minilm-l6 --output DIR
    python -m tfbert.train --encoder DIR ...          # then fine-tune the adapted encoder

writes DIR/preprocess/ (the base encoder's, unchanged), DIR/encoder/ (the adapted encoder, with TF Hub's `mlm`
sub-object: masked_lm_positions in, mlm_logits out) and DIR/tfbert.json (base encoder, steps, masking settings,
held-out masked-token accuracy before and after), atomically: built in a hidden temporary directory, verified,
then renamed into place.

Masking: BERT's (--mask-share of the wordpieces chosen, of those 80% [MASK], 10% a random id, 10% kept; never
[CLS], [SEP] or padding), or whole words with --whole-word-masking; drawn anew each epoch, repeatable for --seed.
One text per sequence, cut to --max-seq-length. The held-out texts (--valid-file, else --valid-share of the train
file) are masked once, the same for the before and after figures.
"""
from __future__ import annotations

import argparse
import datetime
import math
import shutil
import sys
import time
from pathlib import Path

__all__ = ["pretrain", "main"]

DEFAULTS = dict(epochs=1, batch_size=32, learning_rate=5e-5, max_seq_length=128, mask_share=0.15, seed=0,
                valid_share=0.1, max_valid=2000, warmup=0.1)


class PretrainError(ValueError):
    """A setting or an encoder pretraining cannot use; the message names it."""


def _split(texts: list[str], share: float, limit: int, seed: int) -> tuple[list[str], list[str]]:
    import numpy as np
    if len(texts) < 2:
        raise PretrainError(f"{len(texts)} text: give at least 2 (one is held out) or a --valid-file")
    n_valid = min(max(1, round(share * len(texts))), limit, len(texts) - 1)
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]


def load_base(name: str, log=print):
    """The base encoder as a Keras model with its weights, its MLM head's arrays (or None) and where they come
    from: the base's own `mlm` sub-object (an earlier tfbert.pretrain output), else the Hugging Face checkpoint's
    cls.predictions.* (when it was converted with its weights), else None (the head is initialised)."""
    import tensorflow as tf

    from tfbert.encoders.bert import build_encoder
    from tfbert.encoders.checkpoint import BertConfig
    from tfbert.encoders.convert import read_metadata
    from tfbert.encoders.mlm import HF_PREFIX, hf_head_weights, saved_head_weights
    from tfbert.encoders.registry import resolve_encoder

    handles = resolve_encoder(name, log=log)
    pair = Path(handles.encoder).parent
    meta = read_metadata(pair)
    if not meta.get("config") or not (pair / "preprocess").is_dir():
        raise PretrainError(f"--encoder {name}: pre-training needs an encoder pair converted by tfbert (a registered "
                            f"embedded name, a Hugging Face checkpoint directory, or a directory with preprocess/, "
                            f"encoder/ and tfbert.json), not {handles.encoder}")
    config = BertConfig(**meta["config"])
    encoder = build_encoder(config, precision=meta.get("precision", "fp32"))
    loaded = tf.saved_model.load(handles.encoder)
    saved = {v.name: v for v in loaded.variables}
    for var in encoder.weights:
        if var.name not in saved or tuple(saved[var.name].shape) != tuple(var.shape):
            raise PretrainError(f"{handles.encoder}: no saved variable {var.name} of shape {tuple(var.shape)}: "
                                "not an encoder tfbert converted")
        var.assign(saved[var.name])
    head, head_source = None, "initialised: the base encoder has no MLM head"
    if hasattr(loaded, "mlm"):
        head, head_source = saved_head_weights(loaded.mlm), f"from the base encoder's mlm sub-object ({pair})"
    elif meta.get("weights") == "checkpoint" and meta.get("source"):
        weights_file = Path(meta["source"]) / "model.safetensors"
        if weights_file.is_file():
            from safetensors import safe_open
            with safe_open(str(weights_file), "np") as f:
                keys = [k for k in f.keys() if k.startswith(HF_PREFIX)]  # read only the head's arrays
                arrays = {k: f.get_tensor(k) for k in keys}
            head = hf_head_weights(arrays)
            if head is not None:
                head_source = f"from the checkpoint's cls.predictions.* ({weights_file})"
            else:
                head_source = f"initialised: the checkpoint {meta['source']} has no MLM head (cls.predictions.*)"
    return handles, meta, config, encoder, head, head_source


def evaluate(model, dataset) -> dict:
    """Masked-token accuracy and loss over all predicted positions of `dataset` (masked once, in order)."""
    import tensorflow as tf
    correct = total = loss = 0.0
    for inputs, labels, weights in dataset:
        logits = model(inputs, training=False)["mlm_logits"]
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        correct += float(tf.reduce_sum(hit * weights))
        loss += float(tf.reduce_sum(ce * weights))
        total += float(tf.reduce_sum(weights))
    return {"accuracy": correct / total if total else None, "loss": loss / total if total else None,
            "predictions": int(total)}


def _masked_loss(labels, logits, weights):
    import tensorflow as tf
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def pretrain(train_file, output, *, encoder: str = "minilm-l6", valid_file=None, text_column: str | None = None,
             epochs: int = DEFAULTS["epochs"], batch_size: int = DEFAULTS["batch_size"],
             learning_rate: float = DEFAULTS["learning_rate"], max_seq_length: int = DEFAULTS["max_seq_length"],
             mask_share: float = DEFAULTS["mask_share"], whole_word_masking: bool = False,
             seed: int = DEFAULTS["seed"], max_steps: int | None = None, valid_share: float = DEFAULTS["valid_share"],
             max_valid: int = DEFAULTS["max_valid"], warmup: float = DEFAULTS["warmup"], overwrite: bool = False,
             log=print) -> dict:
    """Runs continued MLM pre-training and writes the new encoder pair to `output`; returns its metadata."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras as keras

    from tfbert.data.masking import MaskedTexts, Masking
    from tfbert.data.pipeline import steps_per_epoch
    from tfbert.data.texts import read_texts
    from tfbert.encoders.convert import METADATA_FILE
    from tfbert.encoders.mlm import attach, build_mlm_model, mlm_head, set_head_weights
    from tfbert.files import atomic_directory, write_json
    from tfbert.optim import make_optimizer
    from tfbert.progress import Progress, duration

    started = time.monotonic()
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists (--overwrite replaces it)")
    if epochs < 1 or batch_size < 1 or (max_steps is not None and max_steps < 1):
        raise PretrainError("--epochs, --batch-size and --max-steps must be at least 1")
    texts, notes = read_texts(train_file, text_column)
    if valid_file:
        train_texts, (valid_texts, valid_notes) = texts, read_texts(valid_file, text_column)
        notes += valid_notes
    else:
        train_texts, valid_texts = _split(texts, valid_share, max_valid, seed)
        notes.append(f"held out {len(valid_texts)} of the {len(texts)} texts for the before/after accuracy "
                     "(--valid-file to give your own)")
    for n in notes:
        log(f"note: {n}")

    keras.utils.set_random_seed(seed)
    handles, meta, config, enc, head_arrays, head_source = load_base(encoder, log=log)
    limit = config.max_position_embeddings
    if not 3 <= max_seq_length <= limit:
        raise PretrainError(f"--max-seq-length {max_seq_length}: must lie between 3 and the encoder's {limit} positions")
    model = build_mlm_model(enc, config, seed=seed)
    if head_arrays is not None:
        set_head_weights(mlm_head(model), head_arrays, head_source)
    log(f"MLM head: {head_source}")

    preprocess = hub.load(handles.preprocess)
    masking = Masking.of(preprocess, share=mask_share, whole_word=whole_word_masking)
    train = MaskedTexts(train_texts, preprocess, masking, max_seq_length, seed=seed)
    valid = MaskedTexts(valid_texts, preprocess, masking, max_seq_length, seed=seed + 1)
    if train.cut["texts_cut"]:
        log(f"note: {train.cut['texts_cut']} of {train.n} training texts are longer than {max_seq_length - 2} "
            f"wordpieces and were cut ({train.cut['wordpieces_cut']} of {train.cut['wordpieces']} wordpieces)")

    per_epoch = steps_per_epoch(train.n, batch_size)
    total = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    optimizer = make_optimizer(learning_rate, total, warmup_fraction=warmup)
    # The pooler gets no gradient from the MLM loss (no next-sentence task): it stays as it was.
    variables = [v for v in model.trainable_variables if "pooler_transform" not in v.name]

    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in
            ("input_word_ids", "input_mask", "input_type_ids", "masked_lm_positions")}

    @tf.function(input_signature=[spec, tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)])
    def train_step(inputs, labels, weights):
        with tf.GradientTape() as tape:
            loss = _masked_loss(labels, model(inputs, training=True)["mlm_logits"], weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    log(f"held-out masked-token accuracy before: measuring on {valid.n} texts")
    before = evaluate(model, valid.fixed(batch_size))
    log(f"before: accuracy {before['accuracy']:.4f}, loss {before['loss']:.4f} ({before['predictions']} predictions)")
    log(f"pre-training {total} steps ({per_epoch} per epoch, batch {batch_size}, {train.n} texts, "
        f"{'whole-word' if whole_word_masking else 'wordpiece'} masking of {mask_share:.0%})")
    step, history, train_started = 0, [], time.monotonic()
    with Progress("pre-training", total, steps=total, unit="steps") as progress:
        for epoch in range(epochs):
            losses = []
            for inputs, labels, weights in train.epoch(epoch, batch_size):
                if step >= total:
                    break
                losses.append(float(train_step(inputs, labels, weights)))
                step += 1
                progress.update(1)
            if losses:
                history.append({"epoch": epoch + 1, "steps": len(losses), "loss": sum(losses) / len(losses)})
                log(f"epoch {epoch + 1}: mean MLM loss {history[-1]['loss']:.4f} over {len(losses)} steps")
            if step >= total:
                break
    train_seconds = time.monotonic() - train_started
    after = evaluate(model, valid.fixed(batch_size))
    log(f"after:  accuracy {after['accuracy']:.4f}, loss {after['loss']:.4f} "
        f"(before {before['accuracy']:.4f}, {before['loss']:.4f})")

    metadata = {**meta, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "weights": "continued pre-training",
                "pretraining": {
                    "base_encoder": encoder, "base_encoder_dir": str(Path(handles.encoder).parent),
                    "base_weights": meta.get("weights"), "mlm_head": head_source,
                    "mlm_output_layer": "tied to the word embeddings, plus a bias per vocabulary entry",
                    "train_file": str(train_file), "valid_file": str(valid_file) if valid_file else None,
                    "texts": {"train": train.n, "held_out": valid.n}, "truncation": train.cut,
                    "steps": step, "epochs_run": len(history), "batch_size": batch_size,
                    "learning_rate": learning_rate, "warmup": warmup, "max_seq_length": max_seq_length,
                    "seed": seed, "masking": masking.settings(), "history": history,
                    "held_out_masked_token": {"before": before, "after": after},
                    "train_seconds": round(train_seconds, 1)}}
    vocab = Path(handles.encoder) / "assets" / "vocab.txt"
    if vocab.is_file():
        enc.vocab_file = tf.saved_model.Asset(str(vocab))
    enc.do_lower_case = tf.Variable(bool(meta.get("do_lower_case", True)), trainable=False, name="do_lower_case")
    attach(enc, model)
    log(f"writing {output}")
    with atomic_directory(output, overwrite=overwrite) as tmp:
        shutil.copytree(handles.preprocess, tmp / "preprocess")
        tf.random.set_seed(seed)  # fixed op seeds for the dropout traced now (as tfbert.convert does)
        enc.save(str(tmp / "encoder"), save_format="tf", include_optimizer=False)
        _verify(tmp, model)
        metadata["pretraining"]["seconds"] = round(time.monotonic() - started, 1)
        write_json(tmp / METADATA_FILE, metadata)
    log(f"wrote {output}/preprocess and {output}/encoder (with an mlm sub-object) in "
        f"{duration(time.monotonic() - started)}; fine-tune it with: python -m tfbert.train --encoder {output}")
    return metadata


def _verify(directory: Path, model) -> None:
    """The saved encoder and its mlm sub-object must give the in-memory model's outputs before publishing."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    pre, enc = hub.load(str(directory / "preprocess")), hub.load(str(directory / "encoder"))
    inputs = pre(tf.constant(["The saved encoder is checked before it is published.", "A second text."]))
    inputs = {k: v[:, :16] for k, v in inputs.items()}
    positions = tf.constant([[1, 2], [3, 1]])
    expected = model({**inputs, "masked_lm_positions": positions}, training=False)
    got = enc.mlm({**inputs, "masked_lm_positions": positions}, training=False)
    plain = enc(inputs, training=False)
    for key, a, b in (("mlm_logits", expected["mlm_logits"], got["mlm_logits"]),
                      ("sequence_output", expected["sequence_output"], plain["sequence_output"])):
        diff = float(np.max(np.abs(a.numpy() - b.numpy())))
        bound = 1e-4 * max(1.0, float(np.max(np.abs(a.numpy()))))
        if not diff <= bound:
            raise RuntimeError(f"the saved encoder's {key} differs from the trained model's (max abs diff {diff:g}); "
                               "nothing written")


def build_parser() -> argparse.ArgumentParser:
    from tfbert.cli import positive_int
    ap = argparse.ArgumentParser(prog="python -m tfbert.pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-file", required=True, help="unlabelled texts: one per line (UTF-8; invalid bytes "
                    "replaced), or a .csv/.tsv/.jsonl/.json/.parquet table with --text-column")
    ap.add_argument("--valid-file", help="held-out texts for the before/after masked-token accuracy "
                    "(default: --valid-share of the train file, at most --max-valid texts)")
    ap.add_argument("--text-column", help="a table's text column, or columns joined: title,body (default: text)")
    ap.add_argument("--encoder", default="minilm-l6", help="base encoder: a registered embedded name, a converted "
                    "pair directory (also an earlier pretrain output) or a Hugging Face BERT checkpoint directory "
                    "(default: %(default)s)")
    ap.add_argument("--output", required=True, help="directory to create; gets preprocess/, encoder/, tfbert.json")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output (atomically)")
    ap.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"], help="(default: %(default)s)")
    ap.add_argument("--max-steps", type=positive_int, help="stop after this many steps (default: all epochs)")
    ap.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="(default: %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"],
                    help="peak AdamW rate, after a linear warm-up over --warmup of the steps, then linear decay "
                         "(default: %(default)s)")
    ap.add_argument("--warmup", type=float, default=DEFAULTS["warmup"], help="(default: %(default)s)")
    ap.add_argument("--max-seq-length", type=positive_int, default=DEFAULTS["max_seq_length"],
                    help="wordpieces per sequence with [CLS] and [SEP]; longer texts are cut (default: %(default)s)")
    ap.add_argument("--mask-share", type=float, default=DEFAULTS["mask_share"],
                    help="share of wordpieces predicted; of those 80%% [MASK], 10%% random, 10%% kept "
                         "(default: %(default)s)")
    ap.add_argument("--whole-word-masking", action="store_true",
                    help="choose whole words: all wordpieces of a chosen word are predicted (default: off)")
    ap.add_argument("--valid-share", type=float, default=DEFAULTS["valid_share"], help="(default: %(default)s)")
    ap.add_argument("--max-valid", type=positive_int, default=DEFAULTS["max_valid"], help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                    help="seeds the split, shuffling, masks, head initialisation and dropout (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr (default: shown)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap


def main(argv=None) -> int:
    from tfbert.cli import run_cli
    from tfbert.data.tables import DataError
    from tfbert.encoders.checkpoint import CheckpointError
    from tfbert.encoders.registry import EncoderError

    def run(a):
        if not 0 < a.mask_share < 1:
            raise PretrainError(f"--mask-share {a.mask_share}: must lie between 0 and 1")
        if not 0 < a.valid_share < 1 or not 0 <= a.warmup < 1 or not math.isfinite(a.learning_rate):
            raise PretrainError("--valid-share must lie in (0, 1), --warmup in [0, 1)")
        pretrain(a.train_file, a.output, encoder=a.encoder, valid_file=a.valid_file, text_column=a.text_column,
                 epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.learning_rate,
                 max_seq_length=a.max_seq_length, mask_share=a.mask_share, whole_word_masking=a.whole_word_masking,
                 seed=a.seed, max_steps=a.max_steps, valid_share=a.valid_share, max_valid=a.max_valid,
                 warmup=a.warmup, overwrite=a.overwrite)

    return run_cli(build_parser(), run, argv,
                   errors=(PretrainError, DataError, EncoderError, CheckpointError, FileExistsError))


if __name__ == "__main__":
    sys.exit(main())
