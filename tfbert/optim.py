"""AdamW with BERT's recipe: linear warm-up then linear decay to zero at the last step, no decay on LayerNorm/bias."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

# Variables without weight decay: LayerNorm scales/offsets and biases (names differ across encoders).
NO_DECAY = ["bias", "layer_norm", "LayerNorm", "gamma", "beta"]


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
