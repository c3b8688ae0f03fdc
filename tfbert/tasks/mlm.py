"""Continued pre-training (masked LM, and NSP or SOP) as a task of the one loop (tfbert/fit.py); `python -m
tfbert.pretrain` is its CLI.

The run resumes after a kill, takes --strategy and --config, logs progress and TensorBoard, stops early on the
held-out masked-LM loss (val_neg_mlm_loss, minus the loss; for every objective: the pair head's accuracy saturates
early) and publishes <output-dir>/<model-name>/<version>/ like every task, with its run folder in runs/<version>/.
The version folder is an encoder pair: preprocess/ (the base encoder's, unchanged), encoder/ (the adapted encoder,
with TF Hub's `mlm` sub-object: masked_lm_positions in, mlm_logits out, and next_sentence_logits when a pair
objective trained the pair head) and tfbert.json (the base's config plus `pretraining`: base encoder, objectives,
steps, masking, sequences, held-out masked-token and pair accuracy before and after); `--encoder
<output-dir>/<model-name>` fine-tunes its latest version.

Sequences: tfbert.data.instances (documents of segments: packed, or BERT's segment pairs), built once for the
seed. Masking: tfbert.data.masking (BERT's 80/10/10 of --mask-share of the wordpieces, or whole words), drawn anew
each epoch, repeatable for --seed. The held-out documents (--valid-file, else --valid-share of the train file, at
most --max-valid) are built and masked once: the same sequences and masks for every epoch's validation and for the
before and after figures, which are therefore also the documents that choose the best epoch. With a pair
objective the pooler trains (the pair head reads pooled_output); without one it gets no gradient and is frozen.

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
    """The base encoder as a Keras model with its weights, its heads' arrays ({"mlm": ..., "pair": ...}, each None
    when absent) and where the MLM head's come from: the base's own `mlm` sub-object (an earlier pre-training's
    output), else the Hugging Face checkpoint's cls.predictions.* and cls.seq_relationship.* (when it was
    converted with its weights), else none (the heads are initialised)."""
    from tfbert.encoders.bert import build_encoder
    from tfbert.encoders.checkpoint import BertConfig
    from tfbert.encoders.mlm import (
        HF_PAIR_PREFIX,
        HF_PREFIX,
        hf_head_weights,
        hf_pair_head_weights,
        saved_head_weights,
        saved_pair_head_weights,
    )
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
    heads, head_source = {"mlm": None, "pair": None}, "initialised: the base encoder has no MLM head"
    if hasattr(loaded, "mlm"):
        heads = {"mlm": saved_head_weights(loaded.mlm), "pair": saved_pair_head_weights(loaded.mlm)}
        head_source = f"from the base encoder's mlm sub-object ({pair})"
    elif meta.get("weights") == "checkpoint" and meta.get("source"):
        weights_file = Path(meta["source"]) / "model.safetensors"
        if weights_file.is_file():
            from safetensors import safe_open
            with safe_open(str(weights_file), "np") as f:  # read only the heads' arrays
                keys = [k for k in f.keys() if k.startswith((HF_PREFIX, HF_PAIR_PREFIX))]
                arrays = {k: f.get_tensor(k) for k in keys}
            heads = {"mlm": hf_head_weights(arrays), "pair": hf_pair_head_weights(arrays)}
            if heads["mlm"] is not None:
                head_source = f"from the checkpoint's cls.predictions.* ({weights_file})"
            else:
                head_source = f"initialised: the checkpoint {meta['source']} has no MLM head (cls.predictions.*)"
    return handles, meta, config, encoder, heads, head_source


def evaluate(model, dataset) -> dict:
    """Masked-token accuracy and loss over all predicted positions of `dataset` (masked once, in order); with pair
    labels in the inputs (nsp, sop), also the pair head's accuracy over its pairs ("pair")."""
    from tfbert.data.masking import PAIR_KEYS
    from tfbert.encoders.bert import INPUT_KEYS
    from tfbert.encoders.mlm import PAIR_OUTPUT, POSITIONS_KEY

    correct = total = loss = pair_hits = pairs = 0.0
    for inputs, labels, weights in dataset:
        outputs = model({k: inputs[k] for k in (*INPUT_KEYS, POSITIONS_KEY)}, training=False)
        logits = outputs["mlm_logits"]
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        correct += float(tf.reduce_sum(hit * weights))
        loss += float(tf.reduce_sum(ce * weights))
        total += float(tf.reduce_sum(weights))
        if PAIR_KEYS[0] in inputs:
            guess = tf.argmax(outputs[PAIR_OUTPUT], -1, output_type=tf.int32)
            pair_weights = inputs[PAIR_KEYS[1]]
            pair_hits += float(tf.reduce_sum(tf.cast(guess == inputs[PAIR_KEYS[0]], tf.float32) * pair_weights))
            pairs += float(tf.reduce_sum(pair_weights))
    result = {"accuracy": correct / total if total else None, "loss": loss / total if total else None,
              "predictions": int(total)}
    if pairs:
        result["pair"] = {"accuracy": pair_hits / pairs, "pairs": int(pairs)}
    return result


def as_targets(inputs, labels, weights):
    """Keras wants (inputs, targets): the predicted ids and their weights travel together, [batch, predictions, 2]."""
    return inputs, tf.stack([tf.cast(labels, tf.float32), weights], axis=-1)


def masked_lm_loss(targets, logits):
    """Mean cross-entropy over the predicted positions (weight 1), as BERT's; padding predictions do not count."""
    labels, weights = tf.cast(targets[..., 0], tf.int32), targets[..., 1]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


class PairLoss(keras.layers.Layer):
    """Adds the pair objective's loss (mean cross-entropy over the sequences that are pairs, weight 1) to the
    model's and logs its accuracy (pair_accuracy); passes the MLM logits through, so that it lies on the path to
    the training model's output."""

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        # A Mean over the pairs, not over batches: length grouping makes some batches all masked-LM-only rows.
        self.accuracy = keras.metrics.Mean(name="pair_accuracy")

    def call(self, mlm_logits, pair_logits, labels, weights):
        n = tf.maximum(tf.reduce_sum(weights), 1.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, pair_logits)
        self.add_loss(tf.reduce_sum(ce * weights) / n)
        hit = tf.cast(tf.equal(tf.argmax(pair_logits, -1, output_type=tf.int32), labels), tf.float32)
        self.add_metric(self.accuracy(hit, sample_weight=weights))
        return mlm_logits


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
    """Continued pre-training of a tfbert-converted encoder on unlabelled documents."""


    def __init__(self):
        self.masked: dict[str, MaskedTexts] = {}  # the run's tokenized splits (datasets)
        self.base = None  # (metadata, BertConfig, Keras encoder, the MLM model, head source) of build_model
        self.before = None  # held-out figures of the base weights (build_model)


    def check_encoder(self, preprocess, handles) -> None:
        converted_pair_metadata(handles.name, handles.encoder)  # before training, as load_base checks it again

    def datasets(self, data: TextCorpus, inputs, config, log=print) -> Datasets:
        masking = Masking.of(inputs.preprocess, share=config.mask_share, whole_word=config.whole_word_masking)
        built = dict(objective=data.objective, packing=config.packing)
        train = MaskedTexts(data.train, inputs.preprocess, masking, config.max_seq_length, seed=config.seed, **built)
        valid = MaskedTexts(data.valid, inputs.preprocess, masking, config.max_seq_length, seed=config.seed + 1,
                            **built)
        self.masked = {"train": train, "valid": valid}
        stats = train.cut
        if stats["wordpieces_cut"]:
            log(f"data: {stats['wordpieces_cut']} of {stats['wordpieces']} training wordpieces were cut to fit "
                f"--max-seq-length {config.max_seq_length} (--packing {stats['packing']})")
        if data.objective != "mlm":
            log(f"data: {stats['sequences']} training sequences from {stats['documents']} documents, {stats['pairs']} "
                f"of them {data.objective} pairs (the others masked LM only: a document part of one segment)")
        else:
            log(f"data: {stats['sequences']} training sequences from {stats['documents']} documents "
                f"(--packing {stats['packing']})")
        self.filled = train.real_token_share(config.batch_size)
        log(f"data: real tokens per padded batch position {self.filled['sequences']:.1%} (one document per sequence: "
            f"{self.filled['one_document_per_sequence']:.1%})")
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
        from tfbert.data.masking import PAIR_KEYS
        from tfbert.encoders.mlm import (
            PAIR_OUTPUT,
            build_mlm_model,
            mlm_head,
            pair_head_layer,
            set_head_weights,
            set_pair_head_weights,
        )

        _, meta, bert_config, encoder, heads, head_source = load_base(str(Path(encoder_handle).parent),
                                                                      config.precision, log=lambda *_: None)
        limit = bert_config.max_position_embeddings
        if config.max_seq_length > limit:
            raise PretrainError(f"--max-seq-length {config.max_seq_length}: above the encoder's {limit} positions")
        pairs = data.objective != "mlm"
        mlm = build_mlm_model(encoder, bert_config, seed=config.seed, pair_head=pairs)
        if heads["mlm"] is not None:
            set_head_weights(mlm_head(mlm), heads["mlm"], head_source)
        pair_source = None
        if pairs:
            pair_source = "initialised"
            if heads["pair"] is not None:
                set_pair_head_weights(pair_head_layer(mlm), heads["pair"], head_source)
                pair_source = head_source.replace("cls.predictions.*", "cls.seq_relationship.*")
        encoder.get_layer("pooler_transform").trainable = pairs  # only a pair objective's gradient reaches it
        encoder.get_layer("word_embeddings").trainable = not config.freeze_word_embeddings
        self.base = (meta, bert_config, encoder, mlm, head_source, pair_source)
        self.before = evaluate(mlm, self.masked["valid"].fixed(config.batch_size))
        if not pairs:
            return keras.Model(mlm.input, mlm.output["mlm_logits"], name="mlm_training")
        labels = keras.Input(shape=(), dtype=tf.int32, name=PAIR_KEYS[0])
        weights = keras.Input(shape=(), dtype=tf.float32, name=PAIR_KEYS[1])
        logits = PairLoss(name="pair_loss")(mlm.output["mlm_logits"], mlm.output[PAIR_OUTPUT], labels, weights)
        return keras.Model({**mlm.input, PAIR_KEYS[0]: labels, PAIR_KEYS[1]: weights}, logits, name="mlm_training")

    def compile_args(self, data: TextCorpus, config) -> dict:
        return {"loss": masked_lm_loss, "metrics": [NegMaskedLoss(), MaskedAccuracy()]}

    def after_training(self, model, data: TextCorpus, inputs, config, log=print) -> dict:
        after = evaluate(self.base[3], self.masked["valid"].fixed(config.batch_size))
        before = self.before
        log(f"held-out masked-token accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}, loss "
            f"{before['loss']:.4f} -> {after['loss']:.4f} ({after['predictions']} predictions)")
        fitted = {"held_out_masked_token": {k: {n: v for n, v in r.items() if n != "pair"}
                                            for k, r in (("before", before), ("after", after))},
                  "steps": int(model.optimizer.iterations.numpy())}
        if "pair" in after:
            fitted["held_out_pair"] = {"before": before.get("pair"), "after": after["pair"]}
            log(f"held-out {data.objective} accuracy {before['pair']['accuracy']:.4f} -> "
                f"{after['pair']['accuracy']:.4f} ({after['pair']['pairs']} pairs)")
        return fitted

    def test_metrics(self, directory: Path, written: dict, data: TextCorpus) -> tuple[dict, None]:
        """The held-out masked-token figures of the written encoder's `mlm` sub-object, as a user loads it."""
        import tensorflow_hub as hub
        loaded = hub.load(str(directory / "encoder"))
        return evaluate(loaded.mlm, self.masked["valid"].fixed(written["settings"]["batch_size"])), None

    def report(self, metrics: dict) -> str:
        pair = f", pair accuracy {metrics['pair']['accuracy']:.4f}" if "pair" in metrics else ""
        return (f"held-out masked-token accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} "
                f"({metrics['predictions']} predictions){pair}")

    def headline(self, metrics: dict) -> str:
        return f"held-out masked-token accuracy {metrics['accuracy']:.4f}"

    def export(self, model, handles, data: TextCorpus, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        from tfbert.encoders.convert import METADATA_FILE
        from tfbert.encoders.mlm import attach
        from tfbert.export.publish import publish_next_version
        from tfbert.files import write_json

        meta, _, encoder, mlm, head_source, pair_source = self.base
        objectives = ["mlm"] + ([data.objective] if data.objective != "mlm" else [])
        pretraining = {
            "base_encoder": config.encoder, "base_encoder_dir": str(Path(handles.encoder).parent),
            "base_weights": meta.get("weights"), "objectives": objectives, "mlm_head": head_source,
            "mlm_output_layer": "tied to the word embeddings, plus a bias per vocabulary entry",
            "train_file": config.train_file, "valid_file": config.valid_file, "document_column": config.document_column,
            "documents": {"train": len(data.train), "held_out": len(data.valid)},
            "sequences": {"train": self.masked["train"].cut, "held_out": self.masked["valid"].cut},
            "real_token_share": self.filled,
            "steps": fitted["steps"], "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "warmup": config.warmup_fraction, "max_seq_length": config.max_seq_length, "seed": config.seed,
            "masking": self.masked["train"].masking.settings(),
            "held_out_masked_token": fitted["held_out_masked_token"]}
        if pair_source:
            pretraining.update({"pair_head": f"{pair_source}; pooled_output -> 2 logits, exported as the mlm "
                                             "sub-object's next_sentence_logits (0: next / in order)",
                                "held_out_pair": fitted["held_out_pair"]})
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
    pairs = [(k, expected[k], got[k]) for k in ("mlm_logits", "next_sentence_logits") if k in expected]
    for key, a, b in (*pairs, ("sequence_output", expected["sequence_output"], plain["sequence_output"])):
        diff = float(np.max(np.abs(a.numpy() - b.numpy())))
        bound = 1e-4 * max(1.0, float(np.max(np.abs(a.numpy()))))
        if not diff <= bound:
            raise RuntimeError(f"the saved encoder's {key} differs from the trained model's (max abs diff {diff:g}); "
                               "nothing written")
