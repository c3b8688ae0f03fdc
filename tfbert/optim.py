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
        # No warm-up: the full rate from step 0 (as Hugging Face's linear schedule), not step/1 = 0 at step 0.
        warm = step / self.warmup_steps if self.warmup_steps > 0 else 1.0
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * tf.maximum(0.0, tf.minimum(warm, decay))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW in which a variable may have its own rate factor and its own first step (`schedule_variables`).

    Layer-wise rates: Adam divides by the root of the gradient's second moment, so a scaled gradient gives the same
    step; the factor multiplies the step instead, and the decoupled weight decay (which tf_keras scales by the rate
    too), after the warm-up/decay schedule and with the same NO_DECAY exclusions. One optimizer for all groups,
    rather than one per group, keeps one schedule, one step counter and one global-norm clip over all gradients.

    Gradual unfreezing: before its first step a variable's gradient is zeroed (ahead of the global-norm clip, so
    the clip sees only what trains) and it gets no decay: it stays bit-identical. Its Adam moments stay zero, and
    its bias correction counts from its own first step, so it starts as a fresh Adam would (PyTorch keeps a step
    count per parameter for this reason). The stage is a function of the step counter, which checkpoints hold:
    one traced train function serves every stage and a resumed run continues at its stage. Changing `trainable`
    between stages instead (make_train_function(force=True)) would skip the frozen layers' backward pass, but
    retraces the encoder's SavedModel at each stage, needs every slot variable built in advance (tf_keras builds
    them once) and has to restore the stage on resume; --freeze-layers is the one that saves time.
    """

    def schedule_variables(self, settings) -> None:
        """settings: (variable, rate factor, first step) for the variables that differ from (1.0, 0)."""
        self._layerwise = {self._var_key(v): (float(f), int(s)) for v, f, s in settings if (f, s) != (1.0, 0)}

    def _setting(self, variable) -> tuple[float, int]:
        return getattr(self, "_layerwise", {}).get(self._var_key(variable), (1.0, 0))

    def _active(self, start: int, dtype):
        return tf.cast(self.iterations >= start, dtype)

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        masked = []
        for grad, var in grads_and_vars:
            start = self._setting(var)[1]
            if grad is not None and start > 0:
                grad = tf.convert_to_tensor(grad)  # densify IndexedSlices: a masked sparse update is still dense
                grad = grad * self._active(start, grad.dtype)
            masked.append((grad, var))
        return super().apply_gradients(masked, *args, **kwargs)

    def _apply_weight_decay(self, variables):
        # The variables with a setting are decayed in update_step, at their own rate.
        super()._apply_weight_decay([v for v in variables if self._setting(v) == (1.0, 0)])

    def update_step(self, gradient, variable):
        factor, start = self._setting(variable)
        if (factor, start) == (1.0, 0):
            return super().update_step(gradient, variable)
        if self.amsgrad:
            raise ValueError("per-variable rates are not implemented with amsgrad")
        gradient = tf.convert_to_tensor(gradient)
        lr = tf.cast(self.learning_rate, variable.dtype) * factor * self._active(start, variable.dtype)
        if self.weight_decay and self._use_weight_decay(variable):
            variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * lr)
        local_step = tf.cast(tf.maximum(self.iterations + 1 - start, 1), variable.dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(tf.cast(self.beta_2, variable.dtype), local_step)) / (
            1 - tf.pow(tf.cast(self.beta_1, variable.dtype), local_step))
        m = self._momentums[self._index_dict[self._var_key(variable)]]
        v = self._velocities[self._index_dict[self._var_key(variable)]]
        m.assign_add((gradient - m) * (1 - self.beta_1))
        v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
        variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))


def make_optimizer(learning_rate: float, total_steps: int, warmup_fraction: float = 0.1,
                   weight_decay: float = 0.01, clipnorm: float = 1.0, layerwise=()) -> keras.optimizers.Optimizer:
    """AdamW with BERT's recipe: no decay on LayerNorm/bias, warm-up then linear decay, global-norm clipping.
    layerwise: (variable, rate factor, first step) triples for layer-wise rates and gradual unfreezing."""
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(warmup_fraction * total_steps))
    opt = LayerwiseAdamW(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6, global_clipnorm=clipnorm)
    opt.exclude_from_weight_decay(var_names=NO_DECAY)
    opt.schedule_variables(layerwise)
    return opt
