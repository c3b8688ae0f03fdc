"""Regression and sentence-pair similarity (`regression`): one output unit on the pooled vector, the task's plug-in.

Model: the classifier's head with one unit (tfbert.tasks.classification.build_classifier: encoder -> pooling ->
Dropout -> Dense(1)), trained on standardised labels ((label - mean) / std of the train split) with MSE or Huber.
Validation: Pearson, Spearman and RMSE in the label's units, computed by a callback (correlations do not compile);
early stopping follows Spearman by default (--monitor). Export: tfbert.export.regressor (scores in label units).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.long_texts import log_truncation
from tfbert.data.pipeline import TextPipeline, steps_per_epoch
from tfbert.data.regression import ScoredDataset, tweet_scores
from tfbert.export.regressor import export_regressor
from tfbert.export.serving_core import SERVING_CHECK_TEXTS
from tfbert.files import write_table
from tfbert.metrics.plots import plot_scatter
from tfbert.metrics.regression import correlation, format_regression_report
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import RegressionSpec
from tfbert.tasks.classification import build_classifier, pooled_head


def validation_values(y_true, y_pred) -> dict[str, float]:
    """val_spearman, val_pearson, val_neg_rmse. An undefined correlation (constant predictions, as a fresh head
    can give) counts as 0, no association: NaN would never be 'better' and no best checkpoint would be written."""
    rmse = float(np.sqrt(np.mean((np.asarray(y_pred) - np.asarray(y_true)) ** 2)))
    out = {"val_neg_rmse": -rmse}
    for kind in ("spearman", "pearson"):
        value = correlation(y_true, y_pred, kind)
        out[f"val_{kind}"] = 0.0 if math.isnan(value) else value
    return out


class RegressionValidation(keras.callbacks.Callback):
    """Adds val_spearman, val_pearson and val_neg_rmse (label units) to the epoch logs, for EarlyStopping and
    ModelCheckpoint."""

    def __init__(self, dataset, y_true, mean: float, std: float, pool=lambda scores: scores):
        super().__init__()
        self.dataset, self.y_true, self.mean, self.std = dataset, np.asarray(y_true, np.float64), mean, std
        self.pool = pool  # per example -> per text (TextPipeline.pooler under --long-texts windows)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # pooled as the export pools: the standardised scores
            scores = self.pool(self.model.predict(self.dataset, verbose=0).reshape(-1).astype(np.float32))
            logs.update(validation_values(self.y_true, scores.astype(np.float64) * self.std + self.mean))


class RegressionTask(RegressionSpec, Task):
    """A numeric label for one text or a sentence pair: one-unit head, MSE/Huber on standardised labels."""


    def _dataset(self, df, pipe: TextPipeline, batch_size: int, data: ScoredDataset, **kwargs):
        """(encoder inputs, standardised label [batch, 1]) batches. The pipeline carries each row's index as its
        int label; the float target is looked up after batching."""
        targets = tf.constant(((df["label"].to_numpy() - data.mean) / data.std).astype(np.float32)[:, None])
        ds = pipe.dataset(df.assign(label_id=np.arange(len(df))), batch_size, **kwargs)
        return ds.map(lambda x, i: (x, tf.gather(targets, i)))

    def datasets(self, data: ScoredDataset, inputs, config, log=print) -> Datasets:
        pipe = inputs.pipeline(data.has_pairs)
        self.valid_pool = pipe.pooler(data.valid)  # windows: per text, as the export pools
        cut = pipe.truncation_report({"train": data.train, "valid": data.valid, "test": data.test})
        log_truncation(cut, config.max_seq_length, data.notes, log, "pairs" if data.has_pairs else "rows")
        return Datasets(self._dataset(data.train, pipe, config.batch_size, data, shuffle=True, seed=config.seed,
                                      augment=inputs.augment),
                        self._dataset(data.valid, pipe, 2 * config.batch_size, data),
                        steps_per_epoch(pipe.count(data.train), config.batch_size), truncation=cut)

    def build_model(self, encoder_handle: str, data: ScoredDataset, config):
        # The classifier's head with a single unit: a standardised score per text, [batch, 1].
        return build_classifier(encoder_handle, 1, dropout=config.dropout, pooling=config.pooling,
                                freeze_encoder=config.freeze_encoder,
                                freeze_word_embeddings=config.freeze_word_embeddings, seed=config.seed)

    def head(self, inputs, outputs, data: ScoredDataset, config, prefix: str = "", seed: int = 0):
        return pooled_head(inputs, outputs, 1, pooling=config.pooling, dropout=config.dropout, seed=seed,
                           prefix=prefix)

    def serving_head(self, data: ScoredDataset, fitted: dict) -> dict:
        return {"serving": "regressor", "target": {"mean": data.mean, "std": data.std}}

    def compile_args(self, data: ScoredDataset, config) -> dict:
        loss = keras.losses.Huber(delta=1.0) if config.loss == "huber" else keras.losses.MeanSquaredError()
        return {"loss": loss}

    def validation_callback(self, data: ScoredDataset, datasets: Datasets, config):
        return RegressionValidation(datasets.valid, data.valid["label"].to_numpy(), data.mean, data.std,
                                    self.valid_pool)

    def window_outputs(self, model, data: ScoredDataset, inputs, config):
        pipe = inputs.pipeline(data.has_pairs)
        scores = model.predict(self._dataset(data.valid, pipe, 2 * config.batch_size, data), verbose=0)
        y = tf.constant(((data.valid["label"].to_numpy() - data.mean) / data.std).astype(np.float32)[:, None])
        return (np.asarray(scores, np.float32), pipe.window_items(data.valid), len(data.valid),
                lambda pooled: tf.reduce_mean(tf.square(pooled - y)))

    def score_export(self, client, data: ScoredDataset):
        test = data.test
        return client.score(test["text"].tolist(), test["text_b"].tolist() if data.has_pairs else None,
                            test["label"].to_numpy())

    def plots(self, metrics: dict, predictions, data: ScoredDataset, run_dir) -> None:
        plot_scatter(data.test["label"].to_numpy(), predictions, run_dir / "test_scatter.png",
                     title=f"Test set, Spearman {metrics['spearman']:.3f}")

    def report(self, metrics: dict) -> str:
        return format_regression_report(metrics)

    def headline(self, metrics: dict) -> str:
        return (f"test Spearman {metrics['spearman']:.4f}, Pearson {metrics['pearson']:.4f}, "
                f"MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}")

    def export(self, model, handles, data: ScoredDataset, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        facts, lite = {}, ({} if config.tflite else None)
        version = export_regressor(model, handles.preprocess, base, mean=data.mean, std=data.std,
                                   inputs=inputs.settings, has_pairs=data.has_pairs, encoder_handle=handles.encoder,
                                   pooling=config.pooling, check_texts=data.test["text"].astype(str).tolist()[:SERVING_CHECK_TEXTS],
                                   info=facts, metadata=metadata, tflite=lite, log=log)
        return version, {"target": {"mean": data.mean, "std": data.std}, "serving_graph": facts,
                         **({"tflite": lite} if lite is not None else {})}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Tweets of the built-in corpus with their signed sentiment score (a third per label), as CSV files with
        non-default column names."""
        tweets, _ = tweet_scores()
        sample = tweets.groupby("label").sample(rows // 3, random_state=0).sample(frac=1.0, random_state=0)
        sample = sample[["text", "score"]].rename(columns={"text": "tweet", "score": "sentiment_score"})
        settings = {"text_column": "tweet", "label_column": "sentiment_score"}
        parts = {"train": sample.iloc[: len(sample) // 2], "valid": sample.iloc[len(sample) // 2: 3 * len(sample) // 4],
                 "test": sample.iloc[3 * len(sample) // 4:]}
        for split, part in parts.items():
            path = directory / f"{split}.csv"
            write_table(path, part)
            settings[f"{split}_file"] = str(path)
        return settings
