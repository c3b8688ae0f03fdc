"""A forward-only graph of a trained model's encoder and heads, for the serving export.

The trained core runs the TF Hub encoder as it was saved for training: float32 variables cast to bf16 on every
call (the mixed policy), 3-D Dense/EinsumDense layers and LayerNorm as separate elementwise ops, and the whole
last layer for every token. The export instead lays the same trained weights out once for a forward pass:
- matmul kernels as graph constants in the compute dtype (bf16 for a bf16 encoder): no per-call casts, and
  oneDNN reorders a constant kernel into its blocked layout once instead of on every call;
- query/key/value as one [hidden, 3 hidden] matmul, with the 1/sqrt(head size) scale folded into the query;
- 2-D [tokens, hidden] MatMul + BiasAdd (+ GELU), which grappler's oneDNN remapper fuses into one op;
- in a bf16 graph, LayerNorm as Keras' fused form (FusedBatchNormV3 over [1, tokens, hidden, 1]), which the
  remapper turns into oneDNN's layer norm, except for a few rows (a single text), where the two-pass elementwise
  form is faster; a float32 graph keeps the elementwise form;
- in the last layer, only the [CLS] rows go through the attention output and feed-forward when every head reads
  the pooled output or [CLS] alone.
A head reads the pooled output, [CLS], the masked mean of the positions (the pooled tasks' heads) or every position
(a tagger's); a multitask model's heads read one encoder pass (tfbert.export.multitask).
LayerNorm, softmax and the residual stream stay float32. The mixed policy rounds residual sums, LayerNorm outputs
and softmax to bf16; copying those rounding points moved this graph further from both the trained graph and a
float32 evaluation of the same weights, so it does not. The export compares this graph with the trained core
before using it (tfbert.export.serving_core) and keeps the trained core if they disagree.

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
READS = ("pooled", "cls", "mean", "tokens")  # what a head reads of the encoder's outputs
# Per compute dtype: at or below this many token rows LayerNorm takes the elementwise form, above it the fused op;
# None: always elementwise. bf16 (Xeon with AMX): the crossover lies between 165 rows (faster elementwise) and 379
# (faster fused). fp32 (AVX2-only EPYC): elementwise was as fast or faster at every size up to 1,024 rows. See
# docs/pages/benchmarks.md.
SMALL_LAYER_NORM_ROWS = {tf.bfloat16: 256, tf.float32: None}


@dataclass
class _Dense:
    """A kernel and bias kept as numpy (not tracked as variables): they enter the graph as constants."""
    kernel: np.ndarray
    bias: np.ndarray


@dataclass
class Head:
    """A head's logits layer: what it reads (READS) and its kernel and bias, float32."""
    reads: str
    kernel: np.ndarray
    bias: np.ndarray


@dataclass
class _Block:
    attention_heads: int
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


class InferenceGraph(tf.Module):
    """Encoder inputs dict -> the heads' logits (float32), the trained model's forward pass without dropout: one
    tensor for one head ([batch, width], or [batch, length, width] for a head reading tokens), a list in head order
    for several (a multitask core's outputs)."""

    def __init__(self, weights: dict[str, np.ndarray], heads: list[Head], *, num_layers: int,
                 layer_norm_eps: float, activation: str = "gelu", dtype=tf.bfloat16):
        """weights: the encoder's variables by name (as saved by tfbert.encoders.convert); heads: the logits
        layers, in the order of the trained model's outputs."""
        super().__init__(name="inference_graph")
        if not heads or any(h.reads not in READS for h in heads):
            raise ValueError(f"every head must read one of {READS}, not {[h.reads for h in heads]}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        self.reads = tuple(h.reads for h in heads)
        self.eps, self.compute_dtype, self.activation = layer_norm_eps, dtype, activation
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
            hidden, n_heads, size = q.shape
            scale = 1.0 / np.sqrt(size)
            qkv = np.concatenate([(q * scale).reshape(hidden, -1), k.reshape(hidden, -1), v.reshape(hidden, -1)], 1)
            qkv_bias = np.concatenate([(qb * scale).reshape(-1), kb.reshape(-1), vb.reshape(-1)])
            blocks.append(_Block(
                attention_heads=n_heads, qkv=dense(qkv, qkv_bias),
                attention_output=dense(_find(weights, attn + "attention_output/kernel").reshape(-1, hidden),
                                       _find(weights, attn + "attention_output/bias")),
                attention_norm=norm(f"layer_{i}_attention_layer_norm"),
                intermediate=dense(_find(weights, f"layer_{i}_intermediate/kernel"),
                                   _find(weights, f"layer_{i}_intermediate/bias")),
                output=dense(_find(weights, f"layer_{i}_output/kernel"), _find(weights, f"layer_{i}_output/bias")),
                output_norm=norm(f"layer_{i}_output_layer_norm")))
        self.blocks = tuple(blocks)  # plain numpy inside: constants of the traced graph, not variables
        self.pooler = (dense(_find(weights, "pooler_transform/kernel"), _find(weights, "pooler_transform/bias"))
                       if "pooled" in self.reads else None)
        self.heads = tuple(_Dense(np.asarray(h.kernel, np.float32), np.asarray(h.bias, np.float32)) for h in heads)

    def _dense(self, x, params: _Dense):
        kernel = tf.constant(params.kernel, self.compute_dtype)
        return tf.nn.bias_add(tf.matmul(tf.cast(x, self.compute_dtype), kernel),
                              tf.constant(params.bias, self.compute_dtype))

    def _layer_norm(self, x, params):
        """LayerNorm over the last axis of a 2-D float32 tensor.

        A few rows (one text, a small batch) take the two-pass elementwise form: oneDNN's layer norm has a fixed
        cost per call that dominates there. In a bf16 graph many rows take one FusedBatchNormV3 (Keras' fused
        form), which the remapper turns into oneDNN's layer norm, faster once there is work to spread; a float32
        graph stays elementwise (SMALL_LAYER_NORM_ROWS). The raw op keeps the encoder's own epsilon
        (tf.nn.fused_batch_norm raises it to at least 1.001e-5)."""
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

        small = SMALL_LAYER_NORM_ROWS[self.compute_dtype]
        return two_pass() if small is None else tf.cond(rows <= small, two_pass, fused)

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
             + tf.expand_dims(self.position[:length], 0))
        x = self._layer_norm(tf.reshape(x, [batch * length, -1]), self.embedding_norm)  # [tokens, H] float32
        mask_bias = tf.reshape(1.0 - tf.cast(mask, tf.float32), [batch, 1, 1, length]) * -1e9
        cls_only = all(r in ("pooled", "cls") for r in self.reads)  # the last layer's other rows go unread
        for i, block in enumerate(self.blocks):
            last_cls_only = cls_only and i == len(self.blocks) - 1
            context = self._attention(self._dense(x, block.qkv), batch, length, block.attention_heads, mask_bias, last_cls_only)
            if last_cls_only:
                x = tf.reshape(x, [batch, length, -1])[:, 0]
            x = self._layer_norm(x + tf.cast(self._dense(context, block.attention_output), tf.float32),
                                 block.attention_norm)
            h = self._activate(self._dense(x, block.intermediate))
            x = self._layer_norm(x + tf.cast(self._dense(h, block.output), tf.float32), block.output_norm)
        cls = x if cls_only else tf.reshape(x, [batch, length, -1])[:, 0]  # x: [tokens, H] unless cls_only
        read = {}  # what the heads read, each computed once
        if "pooled" in self.reads:
            read["pooled"] = tf.tanh(tf.cast(self._dense(cls, self.pooler), tf.float32))
        if "mean" in self.reads:
            m = tf.expand_dims(tf.cast(mask, tf.float32), -1)
            read["mean"] = (tf.reduce_sum(tf.reshape(x, [batch, length, -1]) * m, 1)
                            / tf.maximum(tf.reduce_sum(m, 1), 1.0))
        read["cls"], read["tokens"] = cls, x
        logits = []
        for reads, head in zip(self.reads, self.heads):
            y = tf.matmul(read[reads], head.kernel) + head.bias
            logits.append(tf.reshape(y, [batch, length, -1]) if reads == "tokens" else y)
        return logits[0] if len(logits) == 1 else logits


def inference_graph(core, encoder_handle: str | None, heads: list[tuple[str, str]], dtype=None) \
        -> tuple[InferenceGraph | None, str]:
    """The forward-only graph of `core`, a model whose layer "encoder" is a tfbert-converted encoder and whose
    outputs are the logits of `heads`: (what each reads, READS; its logits layer's name), in output order. Or
    (None, why not). `dtype`: the compute dtype (default: the encoder's precision, bf16 or float32; the TFLite
    copy asks for float32). What a head reads is what the exporter is told, not read from the core: the export
    compares the graph's answers with the core's (tfbert.export.serving_core), so a wrong one is served nowhere."""
    meta = encoder_metadata(encoder_handle) if encoder_handle else {}
    config = meta.get("config")
    if not config:
        return None, "the encoder was not converted by tfbert"
    if config.get("hidden_act") not in ACTIVATIONS:
        return None, f"activation {config.get('hidden_act')!r} is not supported"
    try:
        encoder = core.get_layer("encoder")
        layers = [(reads, core.get_layer(name)) for reads, name in heads]
    except ValueError as e:
        return None, f"the model has no such layer ({e})"
    weights = {w.name.rsplit(":", 1)[0]: w.numpy() for w in encoder.weights}
    try:
        graph = InferenceGraph(
            weights, [Head(reads, *(w.numpy() for w in layer.weights)) for reads, layer in layers],
            num_layers=config["num_layers"], layer_norm_eps=config["layer_norm_eps"], activation=config["hidden_act"],
            dtype=dtype or (tf.bfloat16 if meta.get("precision") == "bf16" else tf.float32))
    except KeyError as e:
        return None, f"encoder variable {e.args[0]!r} not found"
    return graph, ""
