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
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.config import flag
from tfbert.data.long_texts import log_truncation
from tfbert.data.multilabel import MultilabelDataset, builtin_rows, load_multilabel_dataset, split_rows
from tfbert.data.pipeline import AUTOTUNE, TextPipeline, steps_per_epoch
from tfbert.export.multilabel import export_multilabel
from tfbert.files import write_table
from tfbert.metrics.multilabel import format_multilabel_report, tune_thresholds
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.classification import POOLING, build_classifier

# Test texts the export runs in-process and in the fresh process to check it.
CHECK_TEXTS = 32


@dataclass(frozen=True)
class MultilabelOptions:
    # Shared with classification (one --pooling flag: same help and choices). Mean by default here: on the built-in
    # data, pooled_output with plain BCE stayed at the label priors for 5 epochs (test micro-F1 0.13), while the
    # mean-pooled default encoder's frozen vectors already carry the entity types (logistic regression: 0.42).
    pooling: str = flag("mean", "pooled_output of the encoder, the [CLS] vector, or the mean over tokens",
                        choices=POOLING)
    label_separator: str | None = flag(None, "labels are one string per row split on this separator (e.g. '|'); "
                                             "default: a JSON list per row, e.g. [\"a\", \"b\"]")
    label_columns: str | None = flag(None, "comma-separated 0/1 columns, one per label (the column names are the "
                                           "labels), instead of --label-column")
    pos_weights: str = flag("balanced", "balanced: weight each label's positive examples by its negatives/positives "
                                        "ratio in train, for rare labels (without it, a fresh head learns the "
                                        "label priors first and rare labels stay below 0.5)",
                            choices=("none", "balanced"))


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


class MultilabelTask(Task):
    """Multi-label classification: sigmoid per label, binary cross-entropy, micro PR-AUC on validation, per-label
    thresholds tuned on validation."""

    name = "multilabel"
    description = ("multi-label classification (a set of labels per text); default data: the entity types each "
                   "tweet of the built-in Twitter NER corpus mentions")
    # ~1.9k rows: more epochs and a higher peak rate than classification (bf16 where native, frozen word
    # embeddings); chosen from runs on the built-in data (docs/pages/tasks/multilabel.md).
    defaults = {"epochs": 10, "learning_rate": 1e-4, "patience": 4, "precision": "auto", "freeze_word_embeddings": True}
    # Micro PR-AUC (every (text, label) score ranked at once): threshold-free, so it tracks progress while a fresh
    # head still keeps every probability under 0.5 and micro-F1 at 0.5 reads 0 for epochs on rare labels (measured:
    # early stopping on val_micro_f1 kept epoch 1 of the built-in data, test micro-F1 0.13).
    monitor = "val_pr_auc"
    options = MultilabelOptions
    augments = True

    def check_config(self, config, log=print) -> None:
        if config.text_b_column is not None:
            log("warning: --text-b-column does not apply to --task multilabel; ignored")
        if not config.train_file and (config.label_separator or config.label_columns):
            log("warning: --label-separator/--label-columns apply to --train-file data; the built-in data has its "
                "own labels")

    def load_data(self, config) -> MultilabelDataset:
        return load_multilabel_dataset(config.train_file, config.valid_file, config.test_file,
                                       text_column=config.text_column, label_column=config.label_column,
                                       label_separator=config.label_separator, label_columns=config.label_columns,
                                       seed=config.seed, max_train_examples=config.max_train_examples,
                                       min_rows=config.batch_size)

    def describe(self, data: MultilabelDataset) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test rows; "
                f"{len(data.labels)} labels: {', '.join(data.labels)}")

    def run_facts(self, data: MultilabelDataset) -> dict:
        return {"labels": data.labels}

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
        version = export_multilabel(model, handles.preprocess, data.labels, thresholds, base, inputs=inputs.settings,
                                    check_texts=data.test["text"].tolist()[:CHECK_TEXTS], metadata=metadata, log=log)
        return version, {}

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
