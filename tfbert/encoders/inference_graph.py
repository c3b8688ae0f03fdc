"""A forward-only graph of a trained classifier, for the serving export.

The trained core runs the TF Hub encoder as it was saved for training: float32 variables cast to bf16 on every
call (the mixed policy), 3-D Dense/EinsumDense layers and LayerNorm as separate elementwise ops, and the whole
last layer for every token. The export instead lays the same trained weights out once for a forward pass:
- matmul kernels as graph constants in the compute dtype (bf16 for a bf16 encoder): no per-call casts, and
  oneDNN reorders a constant kernel into its blocked layout once instead of on every call;
- query/key/value as one [hidden, 3 hidden] matmul, with the 1/sqrt(head size) scale folded into the query;
- 2-D [tokens, hidden] MatMul + BiasAdd (+ GELU), which grappler's oneDNN remapper fuses into one op;
- LayerNorm as Keras' fused form (FusedBatchNormV3 over [1, tokens, hidden, 1]), which the remapper turns into
  oneDNN's layer norm, except for a few rows (a single text), where the two-pass elementwise form is faster;
- in the last layer, only the [CLS] rows go through the attention output and feed-forward when the head reads
  the pooled output or [CLS] alone.
LayerNorm, softmax and the residual stream stay float32. The mixed policy rounds residual sums, LayerNorm outputs
and softmax to bf16; copying those rounding points moved this graph further from both the trained graph and a
float32 evaluation of the same weights, so it does not. The export compares this graph with the trained core
before using it (tfbert.export.classifier) and keeps the trained core if they disagree.

Only encoders converted by tfbert qualify: their variable names and config (tfbert.json beside the encoder)
are known. Any other TF Hub encoder is exported with the trained core, unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfbert.encoders.bert import INPUT_KEYS
from tfbert.encoders.convert import encoder_metadata

ACTIVATIONS = ("gelu", "gelu_new", "relu")
# At or below this many token rows LayerNorm takes the elementwise form: the crossover lies between 165 rows
# (faster elementwise) and 379 (faster fused), see docs/pages/benchmarks.md.
SMALL_LAYER_NORM_ROWS = 256


@dataclass
class _Dense:
    """A kernel and bias kept as numpy (not tracked as variables): they enter the graph as constants."""
    kernel: np.ndarray
    bias: np.ndarray


@dataclass
class _Block:
    heads: int
    qkv: _Dense
    attention_output: _Dense
    attention_norm: tuple  # (gamma, beta) float32
    intermediate: _Dense
    output: _Dense
    output_norm: tuple


def _find(weights: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    hits = [k for k in weights if k == suffix or k.endswith("/" + suffix)]
    if len(hits) != 1:
        raise KeyError(suffix)
    return weights[hits[0]]


class InferenceClassifier(tf.Module):
    """Encoder inputs dict -> logits (float32): the trained classifier's forward pass, without dropout."""

    def __init__(self, weights: dict[str, np.ndarray], head: tuple[np.ndarray, np.ndarray], *, num_layers: int,
                 layer_norm_eps: float, activation: str = "gelu", pooling: str = "pooled", dtype=tf.bfloat16):
        """weights: the encoder's variables by name (as saved by tfbert.encoders.convert); head: the logits kernel, bias."""
        super().__init__(name="inference_classifier")
        if pooling not in ("pooled", "cls", "mean"):
            raise ValueError(f"pooling must be pooled, cls or mean, not {pooling!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        self.pooling, self.eps, self.compute_dtype, self.activation = pooling, layer_norm_eps, dtype, activation
        low = lambda a: tf.cast(np.asarray(a, np.float32), dtype).numpy()  # noqa: E731
        dense = lambda kernel, bias: _Dense(low(kernel), low(bias))  # noqa: E731
        f32 = lambda name: np.asarray(_find(weights, name), np.float32)  # noqa: E731
        norm = lambda name: (f32(name + "/gamma"), f32(name + "/beta"))  # noqa: E731
        # The embedding tables are only gathered from: float32 variables, as trained.
        variable = lambda name: tf.Variable(f32(name), trainable=False)  # noqa: E731
        self.word = variable("word_embeddings/embeddings")
        self.position = variable("position_embedding/embeddings")
        self.types = variable("type_embeddings/embeddings")
        self.embedding_norm = norm("embeddings_layer_norm")
        blocks = []
        for i in range(num_layers):
            attn = f"layer_{i}_self_attention/"
            q, k, v = (_find(weights, f"{attn}{n}/kernel") for n in ("query", "key", "value"))  # [H, heads, size]
            qb, kb, vb = (_find(weights, f"{attn}{n}/bias") for n in ("query", "key", "value"))
            hidden, heads, size = q.shape
            scale = 1.0 / np.sqrt(size)
            qkv = np.concatenate([(q * scale).reshape(hidden, -1), k.reshape(hidden, -1), v.reshape(hidden, -1)], 1)
            qkv_bias = np.concatenate([(qb * scale).reshape(-1), kb.reshape(-1), vb.reshape(-1)])
            blocks.append(_Block(
                heads=heads, qkv=dense(qkv, qkv_bias),
                attention_output=dense(_find(weights, attn + "attention_output/kernel").reshape(-1, hidden),
                                       _find(weights, attn + "attention_output/bias")),
                attention_norm=norm(f"layer_{i}_attention_layer_norm"),
                intermediate=dense(_find(weights, f"layer_{i}_intermediate/kernel"),
                                   _find(weights, f"layer_{i}_intermediate/bias")),
                output=dense(_find(weights, f"layer_{i}_output/kernel"), _find(weights, f"layer_{i}_output/bias")),
                output_norm=norm(f"layer_{i}_output_layer_norm")))
        self.blocks = tuple(blocks)  # plain numpy inside: constants of the traced graph, not variables
        self.pooler = (dense(_find(weights, "pooler_transform/kernel"), _find(weights, "pooler_transform/bias"))
                       if pooling == "pooled" else None)
        self.head = _Dense(np.asarray(head[0], np.float32), np.asarray(head[1], np.float32))

    def _dense(self, x, params: _Dense):
        kernel = tf.constant(params.kernel, self.compute_dtype)
        return tf.nn.bias_add(tf.matmul(tf.cast(x, self.compute_dtype), kernel),
                              tf.constant(params.bias, self.compute_dtype))

    def _layer_norm(self, x, params):
        """LayerNorm over the last axis of a 2-D float32 tensor.

        A few rows (one text, a small batch) take the two-pass elementwise form: oneDNN's layer norm has a fixed
        cost per call that dominates there. Many rows take one FusedBatchNormV3 (Keras' fused form), which the
        remapper turns into oneDNN's layer norm, faster once there is work to spread. The raw op keeps the
        encoder's own epsilon (tf.nn.fused_batch_norm raises it to at least 1.001e-5)."""
        rows = tf.shape(x)[0]
        gamma, beta = tf.constant(params[0]), tf.constant(params[1])

        def two_pass():
            d = x - tf.reduce_mean(x, -1, keepdims=True)
            return d * tf.math.rsqrt(tf.reduce_mean(tf.square(d), -1, keepdims=True) + self.eps) * gamma + beta

        def fused():
            y = tf.raw_ops.FusedBatchNormV3(
                x=tf.reshape(x, [1, rows, -1, 1]), scale=tf.ones([rows]), offset=tf.zeros([rows]),
                mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32), epsilon=self.eps,
                data_format="NCHW", is_training=True).y
            return tf.reshape(y, tf.shape(x)) * gamma + beta

        return tf.cond(rows <= SMALL_LAYER_NORM_ROWS, two_pass, fused)

    def _activate(self, x):
        if self.activation == "relu":
            return tf.nn.relu(x)
        return tf.nn.gelu(x, approximate=self.activation == "gelu_new")

    def _attention(self, qkv, batch, length, heads, mask_bias, cls_only: bool):
        """qkv [batch*length, 3H] -> context [batch*length, H], or [batch, H] for the [CLS] queries alone."""
        q, k, v = tf.unstack(tf.transpose(tf.reshape(qkv, [batch, length, 3, heads, -1]), [2, 0, 3, 1, 4]))
        if cls_only:
            q = q[:, :, :1]  # [batch, heads, 1, size]
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) + mask_bias
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), self.compute_dtype)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [batch, queries, heads, size]
        return tf.reshape(context, [-1, tf.shape(qkv)[-1] // 3])

    def __call__(self, inputs, training=False):
        return self.forward({k: inputs[k] for k in INPUT_KEYS})

    # One function in the SavedModel's library, called by every signature: its constants are stored once.
    @tf.function(input_signature=[{k: tf.TensorSpec([None, None], tf.int32, name=k) for k in INPUT_KEYS}])
    def forward(self, inputs):
        ids, mask = inputs["input_word_ids"], inputs["input_mask"]
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        x = (tf.gather(self.word, ids) + tf.gather(self.types, inputs["input_type_ids"])
             + self.position[tf.newaxis, :length])
        x = self._layer_norm(tf.reshape(x, [batch * length, -1]), self.embedding_norm)  # [tokens, H] float32
        mask_bias = (1.0 - tf.cast(mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * -1e9
        for i, block in enumerate(self.blocks):
            cls_only = i == len(self.blocks) - 1 and self.pooling != "mean"
            context = self._attention(self._dense(x, block.qkv), batch, length, block.heads, mask_bias, cls_only)
            if cls_only:
                x = tf.reshape(x, [batch, length, -1])[:, 0]
            x = self._layer_norm(x + tf.cast(self._dense(context, block.attention_output), tf.float32),
                                 block.attention_norm)
            h = self._activate(self._dense(x, block.intermediate))
            x = self._layer_norm(x + tf.cast(self._dense(h, block.output), tf.float32), block.output_norm)
        if self.pooling == "mean":
            m = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
            x = tf.reduce_sum(tf.reshape(x, [batch, length, -1]) * m, 1) / tf.maximum(tf.reduce_sum(m, 1), 1.0)
        elif self.pooling == "pooled":
            x = tf.tanh(tf.cast(self._dense(x, self.pooler), tf.float32))
        return tf.matmul(x, self.head.kernel) + self.head.bias


def inference_classifier(core, encoder_handle: str | None, pooling: str = "pooled") \
        -> tuple[InferenceClassifier | None, str]:
    """The forward-only graph for a classifier built by tfbert.tasks.classification.build_classifier with `pooling`,
    or (None, why not). The export compares its answers with the core's, so a wrong `pooling` is served nowhere."""
    meta = encoder_metadata(encoder_handle) if encoder_handle else {}
    config = meta.get("config")
    if not config:
        return None, "the encoder was not converted by tfbert"
    if config.get("hidden_act") not in ACTIVATIONS:
        return None, f"activation {config.get('hidden_act')!r} is not supported"
    try:
        encoder, head = core.get_layer("encoder"), core.get_layer("logits")
    except ValueError:
        return None, "the model is not a tfbert classifier (no 'encoder' and 'logits' layers)"
    weights = {w.name.rsplit(":", 1)[0]: w.numpy() for w in encoder.weights}
    try:
        graph = InferenceClassifier(
            weights, [w.numpy() for w in head.weights], num_layers=config["num_layers"],
            layer_norm_eps=config["layer_norm_eps"], activation=config["hidden_act"], pooling=pooling,
            dtype=tf.bfloat16 if meta.get("precision") == "bf16" else tf.float32)
    except KeyError as e:
        return None, f"encoder variable {e.args[0]!r} not found"
    return graph, ""
