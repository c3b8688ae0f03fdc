"""Text classification (`sentiment`, `classify`): the classifier head and the task's plug-in for the loop.

Model: TF Hub encoder (trainable hub.KerasLayer) -> pooling -> Dropout -> Dense logits. Validation: macro-F1, a
compiled metric (tfbert.metrics.training.MacroF1Score). After training, optionally a temperature (--calibrate) and a
decision threshold (--tune-threshold f1, two labels) fitted on the validation logits (tfbert.metrics.calibration),
served by the export; the test report scores the export. Export: tfbert.export.classifier (probabilities and label names, the
forward-only inference graph where it matches).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.classification import TextDataset, class_weights, weighting
from tfbert.data.long_texts import log_truncation
from tfbert.data.pipeline import steps_per_epoch
from tfbert.data.tweets import load_tweets
from tfbert.encoders.bert import INPUT_KEYS
from tfbert.encoders.layer import encoder_layer
from tfbert.export.classifier import export_classifier
from tfbert.export.serving_core import SERVING_CHECK_TEXTS
from tfbert.files import write_table
from tfbert.metrics.calibration import TEMPERATURE_RANGE, fit_on_validation
from tfbert.metrics.classification import format_report
from tfbert.metrics.plots import plot_confusion_matrix, plot_reliability
from tfbert.metrics.training import MacroF1Score
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import (
    POOLING,
    ClassificationSpec,
    SentimentSpec,
)


def pooled_head(inputs: dict, outputs: dict, width: int, *, pooling: str = "pooled", dropout: float = 0.1,
                seed: int = 0, prefix: str = ""):
    """The pooled tasks' head (classification, multi-label, regression) on one encoder's `outputs`: pooling ->
    Dropout -> Dense(width), float logits [batch, width]. `prefix` names its layers apart from the other heads of a
    multitask model (tfbert.tasks.multitask), which share the encoder; a single-task model's are unprefixed (the
    inference graph finds its "logits" layer by name)."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, not {pooling!r}")
    if pooling == "pooled":
        x = outputs["pooled_output"]
    elif pooling == "cls":
        x = keras.layers.Lambda(lambda s: s[:, 0, :], name=f"{prefix}cls")(outputs["sequence_output"])
    else:
        mask = keras.layers.Lambda(lambda m: tf.cast(m, tf.float32)[:, :, None],
                                   name=f"{prefix}mask")(inputs["input_mask"])
        x = keras.layers.Lambda(lambda a: tf.reduce_sum(a[0] * a[1], 1) / tf.maximum(tf.reduce_sum(a[1], 1), 1.0),
                                name=f"{prefix}mean_pool")([outputs["sequence_output"], mask])
    x = keras.layers.Dropout(dropout, seed=seed, name=f"{prefix}head_dropout")(x)
    return keras.layers.Dense(width, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                              name=f"{prefix}logits")(x)


def encoder_inputs() -> dict:
    return {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}


def build_classifier(encoder_handle: str, num_classes: int, *, dropout: float = 0.1, pooling: str = "pooled",
                     freeze_encoder: bool = False, freeze_word_embeddings: bool = False, seed: int = 0) -> keras.Model:
    """Encoder inputs dict -> logits [batch, num_classes]."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, not {pooling!r}")
    inputs = encoder_inputs()
    encoder = encoder_layer(encoder_handle, freeze_encoder=freeze_encoder,
                            freeze_word_embeddings=freeze_word_embeddings)
    logits = pooled_head(inputs, encoder(inputs), num_classes, pooling=pooling, dropout=dropout, seed=seed)
    return keras.Model(inputs, logits, name="classifier")


class PooledValidation(keras.callbacks.Callback):
    """Under --long-texts windows, replaces Keras' window-level val_macro_f1 in the epoch logs by the macro-F1 of
    the validation texts, their windows' logits pooled as the export pools them (TextPipeline.pooler; attention
    pools by the mean until it is fitted, after training)."""

    def __init__(self, dataset, y_true, pool):
        super().__init__()
        self.dataset, self.y_true, self.pool = dataset, np.asarray(y_true), pool

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import f1_score
        if logs is None:
            return
        y_pred = self.pool(np.asarray(self.model.predict(self.dataset, verbose=0), np.float32)).argmax(-1)
        present = sorted(set(self.y_true) | set(y_pred))  # as tfbert.metrics.classification's macro_f1
        logs["val_macro_f1"] = float(f1_score(self.y_true, y_pred, labels=present, average="macro", zero_division=0))


class ClassificationTask(ClassificationSpec, Task):
    """Single-text or sentence-pair classification: softmax head, cross-entropy, macro-F1 on validation."""

    teacher_facts: dict = {}  # {"teacher": ...} for the metadata and metrics.json of a --teacher run (datasets)


    def datasets(self, data: TextDataset, inputs, config, log=print) -> Datasets:
        pipe = inputs.pipeline(data.has_pairs)
        cut = pipe.truncation_report({"train": data.train, "valid": data.valid, "test": data.test})
        log_truncation(cut, config.max_seq_length, data.notes, log)
        self.weighting, why = weighting(data.train, config.class_weights)
        log(f"Loss weighting: {self.weighting} ({why}).")
        weights = class_weights(data.train, len(data.labels)) if self.weighting == "balanced" else None
        self.valid_pool = pipe.pooler(data.valid)  # PooledValidation, under windows
        targets = {"train": None, "valid": None}
        if config.teacher is not None:  # the label and the teacher's soft targets per row; class weights in the loss
            targets = self._distillation_targets(data, config, log)
            self.distill_class_weights, weights = weights, None
        return Datasets(pipe.dataset(data.train, config.batch_size, shuffle=True, seed=config.seed,
                                     augment=inputs.augment, targets=targets["train"]),
                        pipe.dataset(data.valid, 2 * config.batch_size, targets=targets["valid"]),
                        steps_per_epoch(pipe.count(data.train), config.batch_size), {"class_weight": weights},
                        truncation=cut)

    def _distillation_targets(self, data: TextDataset, config, log=print) -> dict:
        from tfbert.distillation import Teacher, soft_targets, targets
        teacher = Teacher(config.teacher)
        log(f"distillation: teacher {teacher.path} scores the {len(data.train)} training and {len(data.valid)} "
            f"validation texts (temperature {config.distill_temperature}, soft share {config.distill_weight})")
        probs = {split: teacher.probabilities(getattr(data, split), data.labels, data.has_pairs)
                 for split in ("train", "valid")}
        agree = float((probs["valid"].argmax(1) == data.valid["label_id"].to_numpy()).mean())
        log(f"distillation: the teacher's validation accuracy {agree:.4f}")
        self.teacher_facts = {"teacher": {**teacher.facts(), "valid_accuracy": agree}}
        return {split: targets(getattr(data, split)["label_id"].to_numpy(),
                               soft_targets(p, config.distill_temperature)) for split, p in probs.items()}

    def build_model(self, encoder_handle: str, data: TextDataset, config):
        return build_classifier(encoder_handle, len(data.labels), dropout=config.dropout, pooling=config.pooling,
                                freeze_encoder=config.freeze_encoder,
                                freeze_word_embeddings=config.freeze_word_embeddings, seed=config.seed)

    def head(self, inputs, outputs, data: TextDataset, config, prefix: str = "", seed: int = 0):
        return pooled_head(inputs, outputs, len(data.labels), pooling=config.pooling, dropout=config.dropout,
                           seed=seed, prefix=prefix)

    def serving_head(self, data: TextDataset, fitted: dict) -> dict:
        return {"serving": "classifier", "labels": list(data.labels),
                "temperature": fitted.get("calibration", {}).get("temperature", 1.0),
                "threshold": fitted.get("decision_threshold", {}).get("value")}

    def summary_extras(self, data: TextDataset) -> dict:
        return {"class_weights": self.weighting, **self.teacher_facts}  # what --class-weights auto chose

    def constant_score(self, data: TextDataset) -> tuple[str, float]:
        from sklearn.metrics import f1_score
        majority = int(data.train["label_id"].value_counts().idxmax())
        y_true = data.valid["label_id"].to_numpy()
        present = sorted(set(y_true) | {majority})  # as val_macro_f1 (MacroF1Score) counts classes
        value = f1_score(y_true, np.full_like(y_true, majority), labels=present, average="macro", zero_division=0)
        return f"the majority class {data.labels[majority]!r} for every text", float(value)

    def validation_callback(self, data: TextDataset, datasets: Datasets, config):
        # Windows: Keras' val_macro_f1 scores windows; early stopping should follow texts, pooled as served.
        if config.long_texts != "windows":
            return None
        return PooledValidation(datasets.valid, data.valid["label_id"].to_numpy(), self.valid_pool)

    def compile_args(self, data: TextDataset, config) -> dict:
        # macro_f1 is a compiled metric: Keras' validation pass yields val_macro_f1, the monitored value.
        metrics = ["accuracy", MacroF1Score(len(data.labels))]
        if config.teacher is not None:  # targets: [label id, soft targets...] (tfbert.distillation)
            from tfbert.distillation import distillation_loss, on_labels
            return {"loss": distillation_loss(config.distill_temperature, config.distill_weight,
                                              self.distill_class_weights),
                    "metrics": [on_labels(m) for m in metrics]}
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "metrics": metrics}

    def _logits(self, model, frame, inputs, config, has_pairs: bool) -> np.ndarray:
        pipe = inputs.pipeline(has_pairs)
        logits = model.predict(pipe.dataset(frame, 2 * config.batch_size), verbose=0)
        return pipe.pool(np.asarray(logits, dtype=np.float32), frame)  # windows: per text, as the export pools

    def window_outputs(self, model, data: TextDataset, inputs, config):
        pipe = inputs.pipeline(data.has_pairs)
        logits = np.asarray(model.predict(pipe.dataset(data.valid, 2 * config.batch_size), verbose=0), np.float32)
        y = tf.constant(data.valid["label_id"].to_numpy(), tf.int64)
        return (logits, pipe.window_items(data.valid), len(data.valid),
                lambda pooled: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, pooled)))

    def after_training(self, model, data: TextDataset, inputs, config, log=print) -> dict:
        # Empty: the export answers the argmax at T = 1.
        if not config.calibrate and config.tune_threshold == "none":
            return {}
        logits = self._logits(model, data.valid, inputs, config, data.has_pairs)
        fitted = fit_on_validation(logits, data.valid["label_id"].to_numpy(), data.labels, calibrate=config.calibrate,
                                   tune=None if config.tune_threshold == "none" else config.tune_threshold)
        if "calibration" in fitted:
            c = fitted["calibration"]
            before, after = c["valid"]["before"], c["valid"]["after"]
            log(f"calibration: temperature {c['temperature']:.3f}; validation ECE {before['ece']:.4f} -> "
                f"{after['ece']:.4f}, log-loss {before['log_loss']:.4f} -> {after['log_loss']:.4f}")
            if "skipped" in c:
                log(f"WARNING: calibration: {c['skipped']}")
            elif not TEMPERATURE_RANGE[0] * 1.01 < c["temperature"] < TEMPERATURE_RANGE[1] / 1.01:
                log(f"WARNING: calibration: the temperature {c['temperature']:.3g} is at the end of its search range "
                    f"{TEMPERATURE_RANGE}: the validation log-loss kept falling ({len(data.valid)} rows); check the "
                    "validation split, or train without --calibrate")
        if "decision_threshold" in fitted:
            t = fitted["decision_threshold"]
            log(f"decision threshold: {t['positive_label']} when its probability >= {t['value']:.4f}; validation "
                f"F1 {t['valid_f1_argmax']:.4f} (argmax) -> {t['valid_f1']:.4f}")
        return fitted

    def score_export(self, client, data: TextDataset):
        test = data.test
        return client.score(test["text"].tolist(), test["text_b"].tolist() if data.has_pairs else None,
                            test["label_id"].to_numpy())

    def report(self, metrics: dict) -> str:
        return format_report(metrics)

    def headline(self, metrics: dict) -> str:
        return f"test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"

    def export(self, model, handles, data: TextDataset, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        facts, lite = {}, ({} if config.tflite else None)
        version = export_classifier(model, handles.preprocess, data.labels, base, inputs=inputs.settings,
                                    has_pairs=data.has_pairs, encoder_handle=handles.encoder, pooling=config.pooling,
                                    check_texts=data.test["text"].astype(str).tolist()[:SERVING_CHECK_TEXTS],
                                    info=facts, metadata={**metadata, **fitted, **self.teacher_facts},
                                    temperature=fitted.get("calibration", {}).get("temperature", 1.0),
                                    threshold=fitted.get("decision_threshold", {}).get("value"),
                                    tflite=lite, log=log)
        return version, {"serving_graph": facts, **({"tflite": lite} if lite is not None else {})}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Tweets from the built-in corpus, balanced, as CSV files with non-default column names."""
        tweets, _ = load_tweets()
        sample = tweets.groupby("label").sample(rows // 2, random_state=0).sample(frac=1.0, random_state=0)
        settings = {"text_column": "tweet", "label_column": "mood"}
        parts = {"train": sample.iloc[: len(sample) // 2], "valid": sample.iloc[len(sample) // 2: 3 * len(sample) // 4],
                 "test": sample.iloc[3 * len(sample) // 4:]}
        for split, part in parts.items():
            path = directory / f"{split}.csv"
            write_table(path, part.rename(columns={"text": "tweet", "label": "mood"}))
            settings[f"{split}_file"] = str(path)
        return settings

    def plots(self, metrics: dict, predictions, data: TextDataset, run_dir) -> None:
        plot_confusion_matrix(metrics["confusion_matrix"], data.labels, run_dir / "confusion_matrix.png")
        plot_reliability(metrics["reliability"], run_dir / "reliability.png", ece=metrics["ece"])


class SentimentTask(SentimentSpec, ClassificationTask):
    """Classification whose default data is the built-in tweets."""
