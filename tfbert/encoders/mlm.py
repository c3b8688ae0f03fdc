"""BERT's masked-LM head over a tfbert encoder, and the encoder SavedModel with TF Hub's `mlm` sub-object.

The head is BERT's (Hugging Face's BertOnlyMLMHead, TF Model Garden's MaskedLM): the sequence output at the
predicted positions -> dense (hidden -> hidden) + the encoder's activation + LayerNorm -> a product with the
word-embedding table (the output layer is tied to the input embeddings) + a bias per vocabulary entry.

TF Hub's convention for BERT encoders that carry an MLM head: `hub.load(encoder).mlm` (also
`hub.KerasLayer(loaded.mlm)`) takes {input_word_ids, input_mask, input_type_ids, masked_lm_positions} and returns
the encoder's outputs plus `mlm_logits` [batch, positions, vocab]. The sub-object is attached as a plain
trackable (not a Keras sub-layer), so the encoder's own variables, the ones `hub.KerasLayer(encoder)` fine-tunes
and the per-layer options map by name, stay the encoder's; the head's live only under `mlm`.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.encoders.bert import INPUT_KEYS, activation
from tfbert.encoders.checkpoint import BertConfig, CheckpointError

POSITIONS_KEY = "masked_lm_positions"
HF_PREFIX = "cls.predictions."  # BertForMaskedLM / BertForPreTraining checkpoints' head
HF_PAIR_PREFIX = "cls.seq_relationship."  # BertForPreTraining's next-sentence head
PAIR_OUTPUT = "next_sentence_logits"


class MaskedLMHead(keras.layers.Layer):
    """sequence_output [batch, seq, hidden], positions [batch, P] -> logits [batch, P, vocab] (float32)."""

    def __init__(self, config: BertConfig, word_embeddings: keras.layers.Embedding, seed: int = 0, **kwargs):
        super().__init__(dtype="float32", **kwargs)  # float32 whatever the encoder's policy: logits feed a softmax
        self.config = config
        self.word_embeddings = word_embeddings  # shared with the encoder: the tied output layer
        init = keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=seed)
        self.transform = keras.layers.Dense(config.hidden_size, activation=activation(config.hidden_act),
                                            kernel_initializer=init, name="mlm_transform", dtype="float32")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="mlm_layer_norm",
                                                          dtype="float32")

    def build(self, input_shape):
        self.output_bias = self.add_weight("mlm_output_bias", shape=[self.config.vocab_size], initializer="zeros")
        super().build(input_shape)

    def call(self, sequence_output, positions):
        x = tf.gather(tf.cast(sequence_output, tf.float32), positions, batch_dims=1)
        x = self.layer_norm(self.transform(x))
        table = tf.cast(self.word_embeddings.embeddings, tf.float32)
        return tf.matmul(x, table, transpose_b=True) + self.output_bias

    def head_weights(self) -> dict[str, tf.Variable]:
        """The head's own variables (not the tied table), by a stable key."""
        return {"transform/kernel": self.transform.kernel, "transform/bias": self.transform.bias,
                "layer_norm/gamma": self.layer_norm.gamma, "layer_norm/beta": self.layer_norm.beta,
                "output_bias": self.output_bias}


def next_sentence_head(config: BertConfig, seed: int = 0) -> keras.layers.Dense:
    """BERT's pair head (next-sentence or sentence-order prediction): pooled_output -> 2 logits, float32."""
    init = keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=seed + 1)
    return keras.layers.Dense(2, kernel_initializer=init, name="next_sentence", dtype="float32")


def build_mlm_model(encoder: keras.Model, config: BertConfig, seed: int = 0, pair_head: bool = False) -> keras.Model:
    """{input_word_ids, input_mask, input_type_ids, masked_lm_positions} -> the encoder's outputs + mlm_logits (and
    next_sentence_logits with `pair_head`)."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in (*INPUT_KEYS, POSITIONS_KEY)}
    outputs = dict(encoder({k: inputs[k] for k in INPUT_KEYS}))
    head = MaskedLMHead(config, encoder.get_layer("word_embeddings"), seed=seed, name="mlm_head")
    outputs["mlm_logits"] = head(outputs["sequence_output"], inputs[POSITIONS_KEY])
    if pair_head:
        outputs[PAIR_OUTPUT] = next_sentence_head(config, seed)(tf.cast(outputs["pooled_output"], tf.float32))
    return keras.Model(inputs, outputs, name="mlm")


def pair_head_layer(model: keras.Model) -> keras.layers.Dense | None:
    try:
        return model.get_layer("next_sentence")
    except ValueError:
        return None


def mlm_head(model: keras.Model) -> MaskedLMHead:
    return model.get_layer("mlm_head")


def attach(encoder: keras.Model, mlm_model: keras.Model) -> None:
    """Makes `mlm_model` the encoder's `mlm` sub-object in the SavedModel, outside its Keras layers and variables."""
    encoder._track_trackable(mlm_model, name="mlm", overwrite=True)


def hf_head_weights(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The head's arrays from a Hugging Face checkpoint (cls.predictions.*), or None when it has no MLM head."""
    p = HF_PREFIX
    if p + "transform.dense.weight" not in weights:
        return None
    ln = p + "transform.LayerNorm."
    gamma, beta = ("weight", "bias") if ln + "weight" in weights else ("gamma", "beta")
    try:
        return {"transform/kernel": weights[p + "transform.dense.weight"].T,
                "transform/bias": weights[p + "transform.dense.bias"],
                "layer_norm/gamma": weights[ln + gamma], "layer_norm/beta": weights[ln + beta],
                "output_bias": weights[p + "bias"] if p + "bias" in weights else weights[p + "decoder.bias"]}
    except KeyError as e:
        raise CheckpointError(f"the checkpoint's MLM head is incomplete: missing {e.args[0]!r}") from None


def hf_pair_head_weights(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """The next-sentence head's arrays from a Hugging Face checkpoint (cls.seq_relationship.*), or None."""
    if HF_PAIR_PREFIX + "weight" not in weights:
        return None
    return {"kernel": weights[HF_PAIR_PREFIX + "weight"].T, "bias": weights[HF_PAIR_PREFIX + "bias"]}


def set_pair_head_weights(layer: keras.layers.Dense, arrays: dict[str, np.ndarray], source: str) -> None:
    for var, key in ((layer.kernel, "kernel"), (layer.bias, "bias")):
        if tuple(arrays[key].shape) != tuple(var.shape):
            raise CheckpointError(f"{source}: next-sentence head {key} has shape {arrays[key].shape}, expected "
                                  f"{tuple(var.shape)}")
        var.assign(arrays[key])


def saved_pair_head_weights(loaded_mlm) -> dict[str, np.ndarray] | None:
    """The pair head's arrays from a loaded encoder's `mlm` sub-object, or None when it was saved without one."""
    found = {v.name.rsplit(":", 1)[0].rsplit("/", 1)[-1]: v.numpy() for v in loaded_mlm.variables
             if "next_sentence/" in v.name}
    return found if set(found) == {"kernel", "bias"} else None


def set_head_weights(head: MaskedLMHead, arrays: dict[str, np.ndarray], source: str) -> None:
    for key, var in head.head_weights().items():
        value = np.asarray(arrays[key])
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"{source}: MLM head weight {key} has shape {value.shape}, expected {tuple(var.shape)}")
        var.assign(value)


def saved_head_weights(loaded_mlm) -> dict[str, np.ndarray]:
    """The head's arrays from a loaded encoder's `mlm` sub-object (an output of tfbert.pretrain)."""
    suffixes = {"transform/kernel": "mlm_transform/kernel", "transform/bias": "mlm_transform/bias",
                "layer_norm/gamma": "mlm_layer_norm/gamma", "layer_norm/beta": "mlm_layer_norm/beta",
                "output_bias": "mlm_output_bias"}
    by_name = {v.name.rsplit(":", 1)[0]: v for v in loaded_mlm.variables}
    out = {}
    for key, suffix in suffixes.items():
        found = [v for name, v in by_name.items() if name.endswith(suffix)]
        if len(found) != 1:
            raise CheckpointError(f"the encoder's mlm sub-object has {len(found)} variables named *{suffix}")
        out[key] = found[0].numpy()
    return out
