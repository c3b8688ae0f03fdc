"""The classifier: TF Hub encoder (trainable hub.KerasLayer) -> pooling -> Dropout -> Dense, and its optimizer."""
from __future__ import annotations

import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from tfbert.bert import INPUT_KEYS

POOLING = ("pooled", "cls", "mean")
# Variables without weight decay: LayerNorm scales/offsets and biases (names differ across encoders).
NO_DECAY = ["bias", "layer_norm", "LayerNorm", "gamma", "beta"]


class EncoderLayer(hub.KerasLayer):
    """hub.KerasLayer that keeps the SavedModel variables whose names contain one of `frozen` fixed.

    Used for the word embeddings: their gradient leaves the SavedModel's function dense, so AdamW updates all
    ~30k x hidden rows every step (11.7M of MiniLM's 22.7M parameters: most of the optimizer's time)."""

    def __init__(self, handle, frozen: tuple[str, ...] = (), **kwargs):
        self._frozen = tuple(frozen)
        super().__init__(handle, **kwargs)

    def _add_existing_weight(self, weight, trainable=None):
        if trainable and any(name in weight.name for name in self._frozen):
            trainable = False
        super()._add_existing_weight(weight, trainable=trainable)


def encoder_layer(encoder_handle: str, *, freeze_encoder: bool = False,
                  freeze_word_embeddings: bool = False) -> EncoderLayer:
    """The TF Hub encoder as the trainable Keras layer that classifier and tagger heads sit on."""
    return EncoderLayer(encoder_handle, frozen=("word_embeddings",) if freeze_word_embeddings else (),
                        trainable=not freeze_encoder, name="encoder")


def build_classifier(encoder_handle: str, num_classes: int, *, dropout: float = 0.1, pooling: str = "pooled",
                     freeze_encoder: bool = False, freeze_word_embeddings: bool = False, seed: int = 0) -> keras.Model:
    """Encoder inputs dict -> logits [batch, num_classes]."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, not {pooling!r}")
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    encoder = encoder_layer(encoder_handle, freeze_encoder=freeze_encoder,
                            freeze_word_embeddings=freeze_word_embeddings)
    outputs = encoder(inputs)
    if pooling == "pooled":
        x = outputs["pooled_output"]
    elif pooling == "cls":
        x = keras.layers.Lambda(lambda s: s[:, 0, :], name="cls")(outputs["sequence_output"])
    else:
        mask = keras.layers.Lambda(lambda m: tf.cast(m, tf.float32)[:, :, None], name="mask")(inputs["input_mask"])
        x = keras.layers.Lambda(lambda a: tf.reduce_sum(a[0] * a[1], 1) / tf.maximum(tf.reduce_sum(a[1], 1), 1.0),
                                name="mean_pool")([outputs["sequence_output"], mask])
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                                name="logits")(x)
    return keras.Model(inputs, logits, name="classifier")


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak, self.total_steps, self.warmup_steps = peak, max(total_steps, 1), warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * tf.maximum(0.0, tf.minimum(warm, decay))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def make_optimizer(learning_rate: float, total_steps: int, warmup_fraction: float = 0.1,
                   weight_decay: float = 0.01, clipnorm: float = 1.0) -> keras.optimizers.Optimizer:
    """AdamW with BERT's recipe: no decay on LayerNorm/bias, warm-up then linear decay, global-norm clipping."""
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(warmup_fraction * total_steps))
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6,
                                 global_clipnorm=clipnorm)
    opt.exclude_from_weight_decay(var_names=NO_DECAY)
    return opt
