"""Continued masked-LM pre-training as a task of the one loop (tfbert/fit.py); `python -m tfbert.pretrain` is its CLI.

The run resumes after a kill, takes --strategy and --config, logs progress and TensorBoard, stops early on the
held-out masked-LM loss (val_neg_mlm_loss, minus the loss) and publishes <output-dir>/<model-name>/<version>/ like every
task, with its run folder in runs/<version>/. The version folder is an encoder pair: preprocess/ (the base
encoder's, unchanged), encoder/ (the adapted encoder, with TF Hub's `mlm` sub-object: masked_lm_positions in,
mlm_logits out) and tfbert.json (the base's config plus `pretraining`: base encoder, steps, masking, held-out
masked-token accuracy before and after); `--encoder <output-dir>/<model-name>` fine-tunes its latest version.

Masking: tfbert.data.masking (BERT's 80/10/10 of --mask-share of the wordpieces, or whole words), drawn anew each
epoch, repeatable for --seed. One text per sequence, cut to --max-seq-length. The held-out texts (--valid-file,
else --valid-share of the train file, at most --max-valid) are masked once: the same masks for every epoch's
validation and for the before and after figures, which are therefore also the texts that choose the best epoch.
The pooler gets no gradient from this task (there is no next-sentence task): it is not trained.

Not a `--task` of tfbert.train: its export is an encoder for later fine-tuning, not a model that serves text.
"""
from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.masking import MaskedTexts, Masking
from tfbert.data.pipeline import steps_per_epoch
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import MlmSpec, PretrainError, TextCorpus


def converted_pair_metadata(name: str, encoder_handle: str) -> dict:
    """The tfbert.json of the pair holding `encoder_handle`; PretrainError when it is not a pair tfbert converted
    (pre-training rebuilds the Keras encoder from its config)."""
    from tfbert.encoders.convert import read_metadata
    pair = Path(encoder_handle).parent
    meta = read_metadata(pair)
    if not meta.get("config") or not (pair / "preprocess").is_dir():
        raise PretrainError(f"--encoder {name}: pre-training needs an encoder pair converted by tfbert (a registered "
                            f"embedded name, a Hugging Face checkpoint directory, or a directory with preprocess/, "
                            f"encoder/ and tfbert.json), not {encoder_handle}")
    return meta


def load_base(name: str, precision: str = "fp32", log=print):
    """The base encoder as a Keras model with its weights, its MLM head's arrays (or None) and where they come
    from: the base's own `mlm` sub-object (an earlier pre-training's output), else the Hugging Face checkpoint's
    cls.predictions.* (when it was converted with its weights), else None (the head is initialised)."""
    from tfbert.encoders.bert import build_encoder
    from tfbert.encoders.checkpoint import BertConfig
    from tfbert.encoders.mlm import HF_PREFIX, hf_head_weights, saved_head_weights
    from tfbert.encoders.registry import resolve_encoder

    handles = resolve_encoder(name, log=log, precision=precision)
    pair = Path(handles.encoder).parent
    meta = converted_pair_metadata(name, handles.encoder)
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


def as_targets(inputs, labels, weights):
    """Keras wants (inputs, targets): the predicted ids and their weights travel together, [batch, predictions, 2]."""
    return inputs, tf.stack([tf.cast(labels, tf.float32), weights], axis=-1)


def masked_lm_loss(targets, logits):
    """Mean cross-entropy over the predicted positions (weight 1), as BERT's; padding predictions do not count."""
    labels, weights = tf.cast(targets[..., 0], tf.int32), targets[..., 1]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


class NegMaskedLoss(keras.metrics.Mean):
    """Minus the masked-LM cross-entropy over all predicted positions (val_neg_mlm_loss: the monitored metric; the
    loop keeps the largest). Smoother than the accuracy, whose ties on a small held-out set keep an early epoch."""

    def __init__(self, name="neg_mlm_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, targets, logits, sample_weight=None):
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets[..., 0], tf.int32),
                                                            tf.cast(logits, tf.float32))
        return super().update_state(-ce, sample_weight=targets[..., 1])


class MaskedAccuracy(keras.metrics.Mean):
    """Share of predicted positions whose id is guessed right (val_mlm_accuracy, logged)."""

    def __init__(self, name="mlm_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, targets, logits, sample_weight=None):
        hit = tf.cast(tf.equal(tf.cast(targets[..., 0], tf.int32), tf.argmax(logits, -1, output_type=tf.int32)),
                      tf.float32)
        return super().update_state(hit, sample_weight=targets[..., 1])


class MlmTask(MlmSpec, Task):
    """Continued masked-LM pre-training of a tfbert-converted encoder on unlabelled texts."""


    def __init__(self):
        self.masked: dict[str, MaskedTexts] = {}  # the run's tokenized splits (datasets)
        self.base = None  # (metadata, BertConfig, Keras encoder, the MLM model, head source) of build_model
        self.before = None  # held-out figures of the base weights (build_model)


    def check_encoder(self, preprocess, handles) -> None:
        converted_pair_metadata(handles.name, handles.encoder)  # before training, as load_base checks it again

    def datasets(self, data: TextCorpus, inputs, config, log=print) -> Datasets:
        masking = Masking.of(inputs.preprocess, share=config.mask_share, whole_word=config.whole_word_masking)
        train = MaskedTexts(data.train, inputs.preprocess, masking, config.max_seq_length, seed=config.seed)
        valid = MaskedTexts(data.valid, inputs.preprocess, masking, config.max_seq_length, seed=config.seed + 1)
        self.masked = {"train": train, "valid": valid}
        if train.cut["texts_cut"]:
            log(f"data: {train.cut['texts_cut']} of {train.n} training texts are longer than "
                f"{config.max_seq_length - 2} wordpieces and were cut ({train.cut['wordpieces_cut']} of "
                f"{train.cut['wordpieces']} wordpieces)")
        per_epoch = steps_per_epoch(train.n, config.batch_size)
        ds = train.training(config.batch_size).map(as_targets)
        valid_ds = valid.fixed(config.batch_size).map(as_targets)  # the before/after figures' masks and batches
        cut = {"long_texts": "truncate", "window": config.max_seq_length - 2, "splits": {"train": train.cut}}
        if config.max_steps is None:
            return Datasets(ds, valid_ds, per_epoch, truncation=cut)
        epochs = -(-config.max_steps // per_epoch)
        steps = -(-config.max_steps // epochs)  # equal epochs of at most one pass, about max_steps in all
        return Datasets(ds.repeat(), valid_ds, steps, {"steps_per_epoch": steps}, truncation=cut, epochs=epochs)

    def build_model(self, encoder_handle: str, data: TextCorpus, config):
        from tfbert.encoders.mlm import build_mlm_model, mlm_head, set_head_weights

        _, meta, bert_config, encoder, head, head_source = load_base(str(Path(encoder_handle).parent),
                                                                     config.precision, log=lambda *_: None)
        limit = bert_config.max_position_embeddings
        if config.max_seq_length > limit:
            raise PretrainError(f"--max-seq-length {config.max_seq_length}: above the encoder's {limit} positions")
        mlm = build_mlm_model(encoder, bert_config, seed=config.seed)
        if head is not None:
            set_head_weights(mlm_head(mlm), head, head_source)
        encoder.get_layer("pooler_transform").trainable = False  # no gradient reaches it without a pair task
        encoder.get_layer("word_embeddings").trainable = not config.freeze_word_embeddings
        self.base = (meta, bert_config, encoder, mlm, head_source)
        self.before = evaluate(mlm, self.masked["valid"].fixed(config.batch_size))
        return keras.Model(mlm.input, mlm.output["mlm_logits"], name="mlm_training")

    def compile_args(self, data: TextCorpus, config) -> dict:
        return {"loss": masked_lm_loss, "metrics": [NegMaskedLoss(), MaskedAccuracy()]}

    def after_training(self, model, data: TextCorpus, inputs, config, log=print) -> dict:
        after = evaluate(self.base[3], self.masked["valid"].fixed(config.batch_size))
        before = self.before
        log(f"held-out masked-token accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}, loss "
            f"{before['loss']:.4f} -> {after['loss']:.4f} ({after['predictions']} predictions)")
        return {"held_out_masked_token": {"before": before, "after": after},
                "steps": int(model.optimizer.iterations.numpy())}

    def test_metrics(self, directory: Path, written: dict, data: TextCorpus) -> tuple[dict, None]:
        """The held-out masked-token figures of the written encoder's `mlm` sub-object, as a user loads it."""
        import tensorflow_hub as hub
        loaded = hub.load(str(directory / "encoder"))
        return evaluate(loaded.mlm, self.masked["valid"].fixed(written["settings"]["batch_size"])), None

    def report(self, metrics: dict) -> str:
        return (f"held-out masked-token accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} "
                f"({metrics['predictions']} predictions)")

    def headline(self, metrics: dict) -> str:
        return f"held-out masked-token accuracy {metrics['accuracy']:.4f}"

    def export(self, model, handles, data: TextCorpus, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        from tfbert.encoders.convert import METADATA_FILE
        from tfbert.encoders.mlm import attach
        from tfbert.export.publish import publish_next_version
        from tfbert.files import write_json

        meta, _, encoder, mlm, head_source = self.base
        pretraining = {
            "base_encoder": config.encoder, "base_encoder_dir": str(Path(handles.encoder).parent),
            "base_weights": meta.get("weights"), "mlm_head": head_source,
            "mlm_output_layer": "tied to the word embeddings, plus a bias per vocabulary entry",
            "train_file": config.train_file, "valid_file": config.valid_file,
            "texts": {"train": len(data.train), "held_out": len(data.valid)}, "truncation": self.masked["train"].cut,
            "steps": fitted["steps"], "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "warmup": config.warmup_fraction, "max_seq_length": config.max_seq_length, "seed": config.seed,
            "masking": self.masked["train"].masking.settings(),
            "held_out_masked_token": fitted["held_out_masked_token"]}
        pair_metadata = {**meta, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "weights": "continued pre-training", "pretraining": pretraining}
        vocab = Path(handles.encoder) / "assets" / "vocab.txt"
        if vocab.is_file():
            encoder.vocab_file = tf.saved_model.Asset(str(vocab))
        encoder.do_lower_case = tf.Variable(bool(meta.get("do_lower_case", True)), trainable=False,
                                            name="do_lower_case")
        attach(encoder, mlm)

        def write(tmp: Path) -> None:
            shutil.copytree(handles.preprocess, tmp / "preprocess")
            tf.random.set_seed(config.seed)  # fixed op seeds for the dropout traced now (as tfbert.convert does)
            encoder.save(str(tmp / "encoder"), save_format="tf", include_optimizer=False)
            verify_pair(tmp, mlm)
            write_json(tmp / METADATA_FILE, pair_metadata)

        version = publish_next_version(base, write, metadata, log, fresh_check=False)
        log(f"fine-tune it with: python -m tfbert.train --encoder {version}")
        return version, {"pretraining": json.loads(json.dumps(pretraining))}


def verify_pair(directory: Path, model) -> None:
    """The saved encoder and its mlm sub-object must give the in-memory model's outputs before publishing."""
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
