"""A BERT encoder as a Keras 2 (tf_keras) functional model with the TF Hub encoder interface.

Inputs: {input_word_ids, input_mask, input_type_ids}, int32 [batch, seq_length], any seq_length up to the
position table's size. Outputs: {pooled_output, sequence_output, encoder_outputs (one per layer), default}.
Post-LayerNorm transformer blocks as in the original BERT and Hugging Face's BertModel.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.encoders.checkpoint import BertConfig, CheckpointError

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings, sliced to the batch's own sequence length."""

    def __init__(self, max_length: int, initializer, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", shape=[self.max_length, input_shape[-1]],
                                          initializer=self.initializer)
        super().build(input_shape)

    def call(self, word_embeddings):
        seq_length = tf.shape(word_embeddings)[1]
        return tf.expand_dims(tf.cast(self.embeddings[:seq_length], word_embeddings.dtype), 0)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length,
                "initializer": keras.initializers.serialize(self.initializer)}


def exact_gelu(x):
    """HF's "gelu": 0.5 x (1 + erf(x / sqrt 2)), evaluated in float32.

    Written with erf rather than tf.nn.gelu's erfc, and in float32 for bfloat16 inputs: on a [3840, 1536]
    activation here, erfc took 1.45x as long as erf in float32, and 3x as long when evaluated in bfloat16
    (the largest elementwise cost of a bf16 forward pass before this).
    """
    x32 = tf.cast(x, tf.float32)
    return tf.cast(0.5 * x32 * (1.0 + tf.math.erf(x32 * 0.7071067811865476)), x.dtype)


def activation(name: str):
    return {"gelu": exact_gelu,
            "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
            "relu": tf.nn.relu}[name]


PRECISIONS = ("fp32", "bf16")


def build_encoder(config: BertConfig, *, seed: int = 0, name: str = "bert_encoder", precision: str = "fp32") -> keras.Model:
    """A freshly initialised encoder (truncated normal, stddev initializer_range, seeded).

    precision "bf16": Keras' mixed_bfloat16 policy, so matmuls run in bfloat16 (AMX / AVX512-BF16 on recent
    x86) while variables, LayerNorm, softmax and GELU stay float32. The policy has to be applied here, when the
    graph is built: a Keras policy has no effect inside an already saved TF Hub model. Outputs are float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        return _build_encoder(config, seed, name)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _build_encoder(config: BertConfig, seed: int, name: str) -> keras.Model:
    init = lambda offset: keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=seed + offset)  # noqa: E731
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    ln = lambda n: keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name=n)  # noqa: E731

    word = keras.layers.Embedding(config.vocab_size, config.hidden_size, embeddings_initializer=init(0),
                                  name="word_embeddings")(inputs["input_word_ids"])
    position = PositionEmbedding(config.max_position_embeddings, init(1), name="position_embedding")(word)
    types = keras.layers.Embedding(config.type_vocab_size, config.hidden_size, embeddings_initializer=init(2),
                                   name="type_embeddings")(inputs["input_type_ids"])
    x = keras.layers.Add(name="embeddings_sum")([word, position, types])
    x = ln("embeddings_layer_norm")(x)
    x = keras.layers.Dropout(config.hidden_dropout, name="embeddings_dropout")(x)

    # [batch, 1, seq]: broadcast over query positions and heads inside MultiHeadAttention.
    attention_mask = keras.layers.Lambda(lambda m: tf.cast(m, tf.bool)[:, tf.newaxis, :],
                                         name="attention_mask")(inputs["input_mask"])
    head_size = config.hidden_size // config.num_heads
    encoder_outputs = []
    for i in range(config.num_layers):
        p = f"layer_{i}_"
        attn = keras.layers.MultiHeadAttention(config.num_heads, head_size, dropout=config.attention_dropout,
                                               kernel_initializer=init(10 + 10 * i), name=p + "self_attention")
        a = attn(x, x, attention_mask=attention_mask)
        a = keras.layers.Dropout(config.hidden_dropout, name=p + "attention_dropout")(a)
        x = ln(p + "attention_layer_norm")(keras.layers.Add(name=p + "attention_residual")([x, a]))
        h = keras.layers.Dense(config.intermediate_size, activation=activation(config.hidden_act),
                               kernel_initializer=init(11 + 10 * i), name=p + "intermediate")(x)
        h = keras.layers.Dense(config.hidden_size, kernel_initializer=init(12 + 10 * i), name=p + "output")(h)
        h = keras.layers.Dropout(config.hidden_dropout, name=p + "output_dropout")(h)
        x = ln(p + "output_layer_norm")(keras.layers.Add(name=p + "output_residual")([x, h]))
        encoder_outputs.append(x)

    cls = keras.layers.Lambda(lambda s: s[:, 0, :], name="cls_token")(x)
    pooled = keras.layers.Dense(config.hidden_size, activation="tanh", kernel_initializer=init(5),
                                name="pooler_transform")(cls)
    # TF Hub's encoder interface promises float32 outputs, whatever the compute precision.
    as_float32 = lambda t, n: keras.layers.Activation("linear", dtype="float32", name=n)(t)  # noqa: E731
    pooled = as_float32(pooled, "pooled_output")
    outputs = {"sequence_output": as_float32(x, "sequence_output"), "pooled_output": pooled, "default": pooled,
               "encoder_outputs": [as_float32(e, f"encoder_output_{i}") for i, e in enumerate(encoder_outputs)]}
    return keras.Model(inputs, outputs, name=name)


def _dense(weights, key, transpose=True):
    w, b = weights[key + ".weight"], weights[key + ".bias"]
    return [w.T if transpose else w, b]


def _layer_norm(weights, key):
    # Old TF-converted checkpoints name LayerNorm parameters gamma/beta.
    if key + ".weight" in weights:
        return [weights[key + ".weight"], weights[key + ".bias"]]
    return [weights[key + ".gamma"], weights[key + ".beta"]]


def hf_weight_map(config: BertConfig, weights: dict[str, np.ndarray], layers: tuple[int, ...] | None = None) \
        -> dict[str, list[np.ndarray]]:
    """Keras layer name -> list of arrays for layer.set_weights(), from HF BertModel parameter names. `layers`: the
    checkpoint's transformer layers that become the encoder's layers 0, 1, ... (default: all, in order)."""
    n, d, h = config.num_heads, config.hidden_size // config.num_heads, config.hidden_size
    e = "embeddings."
    out = {"word_embeddings": [weights[e + "word_embeddings.weight"]],
           "position_embedding": [weights[e + "position_embeddings.weight"]],
           "type_embeddings": [weights[e + "token_type_embeddings.weight"]],
           "embeddings_layer_norm": _layer_norm(weights, e + "LayerNorm")}
    for j, i in enumerate(layers if layers is not None else range(config.num_layers)):
        src, p = f"encoder.layer.{i}.", f"layer_{j}_"
        attn = []
        for proj in ("query", "key", "value"):  # torch Linear [out, in] -> einsum kernel [in, heads, head_size]
            w, b = _dense(weights, src + "attention.self." + proj)
            attn += [w.reshape(h, n, d), b.reshape(n, d)]
        w, b = _dense(weights, src + "attention.output.dense")
        attn += [w.reshape(n, d, h), b]
        out[p + "self_attention"] = attn
        out[p + "attention_layer_norm"] = _layer_norm(weights, src + "attention.output.LayerNorm")
        out[p + "intermediate"] = _dense(weights, src + "intermediate.dense")
        out[p + "output"] = _dense(weights, src + "output.dense")
        out[p + "output_layer_norm"] = _layer_norm(weights, src + "output.LayerNorm")
    if "pooler.dense.weight" in weights:
        out["pooler_transform"] = _dense(weights, "pooler.dense")
    return out


def load_hf_weights(model: keras.Model, config: BertConfig, weights: dict[str, np.ndarray], source: str,
                    layers: tuple[int, ...] | None = None) -> bool:
    """Copies HF weights into `model` (of the checkpoint's `layers` only, see hf_weight_map); returns whether the
    checkpoint had pooler weights."""
    try:
        mapping = hf_weight_map(config, weights, layers)
    except KeyError as e:
        raise CheckpointError(f"{source}: missing weight {e.args[0]!r} (is this a BERT checkpoint?)") from None
    for layer_name, arrays in mapping.items():
        layer = model.get_layer(layer_name)
        for var, arr in zip(layer.weights, arrays):
            if tuple(var.shape) != arr.shape:
                raise CheckpointError(f"{source}: weight for {var.name} has shape {arr.shape}, "
                                      f"expected {tuple(var.shape)} from config.json")
        layer.set_weights(arrays)
    return "pooler_transform" in mapping
