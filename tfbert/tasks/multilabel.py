"""Multi-label classification (`--task multilabel`): each text gets a set of labels, possibly empty.

    python -m tfbert.train --task multilabel                       # built-in: entity types mentioned per tweet
    python -m tfbert.train --task multilabel --train-file t.csv --label-column tags            # JSON lists
    python -m tfbert.train --task multilabel --train-file t.csv --label-column tags --label-separator "|"
    python -m tfbert.train --task multilabel --train-file t.csv --label-columns sports,politics   # 0/1 columns

Model: the classifier's (tfbert.tasks.classification.build_classifier: encoder -> pooling -> Dropout -> Dense) with
one logit per label; loss: binary cross-entropy per label (optionally with per-label positive weights); early
stopping on the validation micro PR-AUC (val_pr_auc, threshold-free). After training, on the best weights, each
label's decision threshold is tuned for F1 on the validation split; the export serves them and the test report
scores the export.
"""
from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.long_texts import log_truncation
from tfbert.data.multilabel import MultilabelDataset, builtin_rows, split_rows
from tfbert.data.pipeline import AUTOTUNE, TextPipeline, steps_per_epoch
from tfbert.export.multilabel import export_multilabel
from tfbert.files import write_table
from tfbert.metrics.multilabel import format_multilabel_report, tune_thresholds
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import MultilabelSpec
from tfbert.tasks.classification import build_classifier, pooled_head

# Test texts the export runs in-process and in the fresh process to check it.
CHECK_TEXTS = 32


class MicroF1Score(keras.metrics.F1Score):
    """Micro-F1 over every (example, label) decision at probability 0.5, from the logits the head outputs
    (keras' F1Score takes probabilities): the compiled validation metric early stopping watches."""

    def __init__(self, name: str = "micro_f1", **kwargs):
        kwargs.pop("average", None), kwargs.pop("threshold", None)
        super().__init__(average="micro", threshold=0.5, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, tf.sigmoid(tf.cast(y_pred, tf.float32)), sample_weight)

    def get_config(self):
        config = super().get_config()
        for key in ("average", "threshold"):
            config.pop(key, None)
        return config


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Per label: negatives / positives in train (1 for a label without positives)."""
    positives = targets.sum(0)
    return np.where(positives > 0, (len(targets) - positives) / np.maximum(positives, 1), 1.0).astype(np.float32)


def sigmoid_loss(pos_weight=None):
    """Binary cross-entropy per label from logits, averaged over labels and examples; with `pos_weight` [labels],
    a label's positive terms are multiplied by its weight (tf.nn.weighted_cross_entropy_with_logits)."""
    weight = None if pos_weight is None else tf.constant(np.asarray(pos_weight, np.float32))

    def multilabel_bce(y_true, logits):
        y_true, logits = tf.cast(y_true, tf.float32), tf.cast(logits, tf.float32)
        if weight is None:
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
        else:
            loss = tf.nn.weighted_cross_entropy_with_logits(labels=y_true, logits=logits, pos_weight=weight)
        return tf.reduce_mean(loss, axis=-1)

    return multilabel_bce


def multilabel_dataset(pipe: TextPipeline, texts, targets: np.ndarray, batch_size: int, *, shuffle: bool = False,
                       seed: int = 0, augment=None):
    """(encoder inputs, multi-hot targets [batch, labels]) batches; training batches reshuffled, grouped by length
    (and augmented: tfbert.data.augment)."""
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(texts, dtype=object), targets)).batch(512)
    if augment is not None:  # augmentation cuts after changing the words (and refuses --long-texts windows)
        ds = ds.map(lambda t, y: (tuple(pipe.words(t)), y), num_parallel_calls=AUTOTUNE)
    else:  # under --long-texts windows every window of a text is an example with the text's labels
        ds = ds.map(lambda t, y: pipe.examples((pipe.tokenize(t),), y), num_parallel_calls=AUTOTUNE)
    return pipe.batches(ds.unbatch(), pipe.count(texts), batch_size, shuffle=shuffle, seed=seed, augment=augment)


def pr_auc():
    """The monitored metric (val_pr_auc): micro PR-AUC of the logits."""
    return keras.metrics.AUC(curve="PR", from_logits=True, name="pr_auc")


class MultilabelTask(MultilabelSpec, Task):
    """Multi-label classification: sigmoid per label, binary cross-entropy, micro PR-AUC on validation, per-label
    thresholds tuned on validation."""


    def datasets(self, data: MultilabelDataset, inputs, config, log=print) -> Datasets:
        pipe = inputs.pipeline()
        cut = pipe.truncation_report({name: getattr(data, name)["text"] for name in ("train", "valid", "test")})
        log_truncation(cut, config.max_seq_length, data.notes, log)
        return Datasets(multilabel_dataset(pipe, data.train["text"], data.targets(data.train), config.batch_size,
                                           shuffle=True, seed=config.seed, augment=inputs.augment),
                        multilabel_dataset(pipe, data.valid["text"], data.targets(data.valid), 2 * config.batch_size),
                        steps_per_epoch(pipe.count(data.train["text"]), config.batch_size), truncation=cut)

    def build_model(self, encoder_handle: str, data: MultilabelDataset, config):
        return build_classifier(encoder_handle, len(data.labels), dropout=config.dropout, pooling=config.pooling,
                                freeze_encoder=config.freeze_encoder,
                                freeze_word_embeddings=config.freeze_word_embeddings, seed=config.seed)

    def head(self, inputs, outputs, data: MultilabelDataset, config, prefix: str = "", seed: int = 0):
        return pooled_head(inputs, outputs, len(data.labels), pooling=config.pooling, dropout=config.dropout,
                           seed=seed, prefix=prefix)

    def serving_head(self, data: MultilabelDataset, fitted: dict) -> dict:
        return {"serving": "multilabel", "labels": list(data.labels),
                "thresholds": [fitted["thresholds"][name] for name in data.labels]}

    def compile_args(self, data: MultilabelDataset, config) -> dict:
        weights = positive_weights(data.targets(data.train)) if config.pos_weights == "balanced" else None
        return {"loss": sigmoid_loss(weights),
                "metrics": [MicroF1Score(), pr_auc()]}

    def constant_score(self, data: MultilabelDataset) -> tuple[str, float]:
        y_true = data.targets(data.valid)
        metric = pr_auc()
        metric.update_state(y_true, np.zeros_like(y_true, dtype=np.float32))  # one logit for every (text, label)
        return "the same score for every label of every text", float(metric.result())

    def probabilities(self, model, inputs, texts, config) -> np.ndarray:
        pipe = inputs.pipeline()
        ds = multilabel_dataset(pipe, texts, np.zeros((len(texts), model.output_shape[-1]), np.float32),
                                2 * config.batch_size)
        logits = pipe.pool(np.asarray(model.predict(ds, verbose=0), np.float32), texts)  # windows: per text
        return tf.sigmoid(logits).numpy()

    def window_outputs(self, model, data: MultilabelDataset, inputs, config):
        pipe, texts, targets = inputs.pipeline(), data.valid["text"], data.targets(data.valid)
        logits = model.predict(multilabel_dataset(pipe, texts, targets, 2 * config.batch_size), verbose=0)
        bce = sigmoid_loss()
        return (np.asarray(logits, np.float32), pipe.window_items(texts), len(texts),
                lambda pooled: tf.reduce_mean(bce(targets, pooled)))

    def after_training(self, model, data: MultilabelDataset, inputs, config, log=print) -> dict:
        thresholds = tune_thresholds(data.targets(data.valid),
                                     self.probabilities(model, inputs, data.valid["text"], config))
        return {"thresholds": dict(zip(data.labels, map(float, thresholds)))}

    def score_export(self, client, data: MultilabelDataset):
        return client.score(data.test["text"].tolist(), data.targets(data.test))

    def report(self, metrics: dict) -> str:
        return format_multilabel_report(metrics)

    def headline(self, metrics: dict) -> str:
        return (f"test micro-F1 {metrics['micro_f1']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, subset accuracy "
                f"{metrics['subset_accuracy']:.4f}")

    def export(self, model, handles, data: MultilabelDataset, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        thresholds = [fitted["thresholds"][name] for name in data.labels]
        facts, lite = {}, ({} if config.tflite else None)
        version = export_multilabel(model, handles.preprocess, data.labels, thresholds, base, inputs=inputs.settings,
                                    encoder_handle=handles.encoder, pooling=config.pooling,
                                    check_texts=data.test["text"].tolist()[:CHECK_TEXTS], info=facts,
                                    metadata=metadata, tflite=lite, log=log)
        return version, {"serving_graph": facts, **({"tflite": lite} if lite is not None else {})}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Tweets of the built-in corpus with the entity types they mention, as CSV files whose label column holds
        JSON lists (tweets with no entity: []); valid/test keep the rows whose labels occur in train."""
        train, valid, test = split_rows(builtin_rows(), 0.1, 0.1, seed=0)
        train = train.iloc[:rows]
        known = {x for names in train["labels"] for x in names}
        settings = {"text_column": "tweet", "label_column": "entity_types"}
        for split, part in (("train", train), ("valid", valid), ("test", test)):
            if split != "train":
                part = part[part["labels"].map(lambda names: set(names) <= known)].iloc[: rows // 2]
            path = directory / f"{split}.csv"
            write_table(path, part.assign(entity_types=part["labels"].map(lambda names: json.dumps(names)))
                        [["text", "entity_types"]].rename(columns={"text": "tweet"}))
            settings[f"{split}_file"] = str(path)
        return settings
