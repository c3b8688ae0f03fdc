#!/usr/bin/env python
"""tfbert benchmark: training throughput, exported-model inference, memory, MFU, and the Hugging Face reference.

    python benchmarks/bench.py                                   # default encoder, built-in tweets, 100 steps
    python benchmarks/bench.py --train-file a.csv --test-file b.csv --text-column review --label-column stars
    python benchmarks/bench.py --variant fp32                    # also the fp32 encoder (default: tfbert's own)
    python benchmarks/bench.py --levers                          # fp32, grappler-AMP, thread settings, ...
    python benchmarks/bench.py --reference-json ref.json         # reuse an existing reference result

Every measured phase runs in its own subprocess (its peak RSS is the child's ru_maxrss from os.wait4, plus
VmHWM read inside the child at phase boundaries):
  peak    large tf.linalg.matmul (fp32, bf16): the machine's matmul peak, the MFU denominator
  train   TextPipeline + build_classifier + make_optimizer, model.fit with a timing callback (steps after the
          first --skip are steady state), then tfbert.export.export_classifier into a temp dir
  infer   the exported SavedModel in a process that imports only tensorflow and tensorflow_text: batch-64
          throughput over the test split (raw strings in, tokenization included), batch-1 latency p50/p99
Then the reference (/work/shared/bench/hf_reference.py --mode bench, its own venv) runs on the very same
train/test splits (written as CSV, columns text,label), and the ratios tfbert / reference-best go into the JSON.

The default variant is what `python -m tfbert.train` does (--precision auto: the bf16 encoder on a CPU with
native bf16). Other variants: fp32 / bf16 (tfbert's converter at that precision), and prototypes that live
here, not in tfbert/: onednn-amp (grappler auto_mixed_precision_onednn_bfloat16 over the fp32 encoder),
thread settings, TF_ENABLE_ONEDNN_OPTS, lean-export, native-encoder. XLA jit_compile is not benchmarked (with per-batch dynamic shapes it recompiles per
shape: > 500 s for one 54-step epoch here).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # ships with tensorflow; light enough for every phase

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_REFERENCE_SCRIPT = "/work/shared/bench/hf_reference.py"
DEFAULT_REFERENCE_PYTHON = "/work/refvenv/bin/python"

# Named lever variants; any "key=value,key=value" string works too (keys: precision, intra, inter, onednn,
# lean_export = export a fresh uncompiled Model over the same layers, i.e. without the optimizer's slots;
# native_encoder = tfbert.bert.build_encoder in-process instead of hub.KerasLayer over the converted SavedModel).
VARIANTS = {
    "default": {},
    "fp32": {"precision": "fp32"},
    "train-word-embeddings": {"freeze_word_embeddings": 0},
    "freeze-word-embeddings": {"freeze_word_embeddings": 1},
    "bf16": {"precision": "bf16"},
    "onednn-amp": {"precision": "onednn-amp"},
    "intra2-inter1": {"intra": 2, "inter": 1},
    "intra1-inter2": {"intra": 1, "inter": 2},
    "onednn-off": {"onednn": 0},
    "lean-export": {"lean_export": 1},
    "native-encoder": {"native_encoder": 1},
}
LEVERS = ["fp32", "onednn-amp", "intra2-inter1", "intra1-inter2", "onednn-off", "lean-export", "native-encoder"]
PRECISIONS = ("auto", "fp32", "bf16", "onednn-amp")


def encoder_precision(precision: str) -> str:
    """The precision tfbert builds the encoder in for a variant's precision setting."""
    return "fp32" if precision == "onednn-amp" else precision


def parse_variant(text: str) -> tuple[str, dict]:
    if text in VARIANTS:
        return text, dict(VARIANTS[text])
    spec = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in ("precision", "intra", "inter", "onednn", "lean_export", "native_encoder",
                       "freeze_word_embeddings") or not value:
            raise SystemExit(f"bad --variant {text!r}: use one of {', '.join(VARIANTS)} or key=value,... "
                             "with keys precision, intra, inter, onednn, lean_export, native_encoder, "
                             "freeze_word_embeddings")
        spec[key] = value if key == "precision" else int(value)
    if spec.get("precision", "fp32") not in PRECISIONS:
        raise SystemExit(f"bad precision {spec['precision']!r}: one of {', '.join(PRECISIONS)}")
    return text, spec


# --------------------------------------------------------------------------- helpers used in every process

def vm_hwm_mb() -> float:
    """Peak resident set of this process so far (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _setup_tf(spec: dict):
    """Thread and grappler settings; must run before the first TF op of the process."""
    import tensorflow as tf
    if spec.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(int(spec["intra"]))
    if spec.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(int(spec["inter"]))
    if spec.get("precision") == "onednn-amp":
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    return tf


def flops_per_example(seq_len: int, cfg: dict, n_classes: int, cls_only_last_layer: bool = False) -> float:
    """Forward matmul FLOPs of one example padded to seq_len: dense layers + attention scores/mixing + head.

    cls_only_last_layer: what tfbert's inference graph runs (tfbert.inference_graph): in the last layer only keys
    and values for every token, the rest for [CLS] alone."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_layers"]
    per_token = 4 * h * h + 2 * h * inter  # Q, K, V, attention output; FFN in and out
    attention = layers * 2 * 2 * seq_len * seq_len * h  # QK^T and AV
    dense = layers * per_token * seq_len
    if cls_only_last_layer:
        dense -= (per_token - 2 * h * h) * (seq_len - 1)
        attention -= 2 * 2 * (seq_len - 1) * seq_len * h
    head = 2 * (h * h + h * n_classes)  # pooler (one token) and classifier
    return 2 * dense + attention + head


# --------------------------------------------------------------------------- phase: matmul peak

def phase_peak(spec: dict) -> dict:
    tf = _setup_tf(spec)
    n, reps = spec.get("n", 4096), spec.get("reps", 5)
    out = {"n": n}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.cast(tf.random.normal([n, n], seed=1), dtype)
        b = tf.cast(tf.random.normal([n, n], seed=2), dtype)
        tf.linalg.matmul(a, b)  # warm-up (oneDNN primitive creation)
        rates = []
        for _ in range(reps):
            t = time.perf_counter()
            c = tf.linalg.matmul(a, b)  # eager CPU ops are synchronous
            _ = c.shape
            rates.append(2 * n ** 3 / (time.perf_counter() - t) / 1e9)
        out[f"{name}_gflops"] = max(rates)
        out[f"{name}_gflops_all"] = [round(r, 1) for r in rates]
    out["vm_hwm_mb"] = vm_hwm_mb()
    return out


# --------------------------------------------------------------------------- phase: train (+ export)

def phase_train(spec: dict) -> dict:
    tf = _setup_tf(spec)
    import numpy as np
    import tensorflow_hub as hub
    import tf_keras as keras

    sys.path.insert(0, str(REPO))
    from tfbert.data_tables import load_dataset
    from tfbert.export import export_classifier
    from tfbert.model import build_classifier, make_optimizer
    from tfbert.pipeline import TextPipeline, steps_per_epoch
    from tfbert.train import SERVING_CHECK_TEXTS

    log = lambda *m: print(*m, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(spec["work_dir"])
    seed, bs, steps = spec["seed"], spec["batch_size"], spec["steps"]
    keras.utils.set_random_seed(seed)
    # The split files written by the parent: all of train.csv trains (the test file doubles as the unused
    # validation split so nothing more is split off), exactly what the reference trains on.
    data = load_dataset(spec["train_file"], spec["test_file"], spec["test_file"], text_column=spec["text_column"],
                        label_column=spec["label_column"], seed=seed, min_rows=bs)
    encoder, preprocess = spec["encoder"], spec["preprocess"]
    out = {"labels": data.labels, "n_train": len(data.train), "n_test": len(data.test)}

    pipe = TextPipeline(hub.load(preprocess), spec["max_seq_length"])
    shapes: list = []  # (batch, padded length, real tokens) of each batch, in the order fit consumes them

    def record(x, y):
        info = tf.stack([tf.shape(x["input_word_ids"])[0], tf.shape(x["input_word_ids"])[1],
                         tf.reduce_sum(tf.cast(x["input_mask"], tf.int32))])
        done = tf.numpy_function(lambda a: (shapes.append(a.tolist()), np.int32(0))[1], [info], tf.int32,
                                 stateful=True)
        with tf.control_dependencies([done]):
            return x, tf.identity(y)

    train_ds = pipe.dataset(data.train, bs, shuffle=True, seed=seed).map(record)
    epoch_steps = steps_per_epoch(len(data.train), bs)
    if spec.get("native_encoder"):  # prototype: the Keras encoder built in-process instead of hub.KerasLayer
        model = native_classifier(tf, keras, spec, len(data.labels))
    else:
        model = build_classifier(encoder, len(data.labels), seed=seed,
                                 freeze_word_embeddings=bool(spec["freeze_word_embeddings"]))
    model.compile(make_optimizer(spec["learning_rate"], epoch_steps),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.losses = [], []

        def on_train_begin(self, logs=None):
            self.prev = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):  # logs arrive as numpy: the step has finished
            now = time.perf_counter()
            self.times.append(now - self.prev)
            self.prev = now
            self.losses.append(float(logs["loss"]))

    timer = StepTimer()
    out["vm_hwm_mb_before_fit"] = vm_hwm_mb()
    t = time.perf_counter()
    model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    out["fit_seconds"] = time.perf_counter() - t
    out["vm_hwm_mb_train"] = vm_hwm_mb()
    out["step_seconds"] = timer.times
    out["batch_shapes"] = shapes[:len(timer.times)]
    out["loss_first_last"] = [timer.losses[0], timer.losses[-1]]

    if spec.get("breakdown"):
        out["breakdown"] = train_breakdown(tf, keras, model, pipe, data, spec)
        out["vm_hwm_mb_breakdown"] = vm_hwm_mb()

    core = model
    if spec.get("lean_export"):  # prototype: the same layers in a fresh, uncompiled Model (no optimizer slots)
        core = keras.Model(model.inputs, model.outputs, name="classifier")
    t = time.perf_counter()
    serving = {}
    version = export_classifier(core, preprocess, data.labels, work / "export", max_seq_length=spec["max_seq_length"],
                                encoder_handle=spec["encoder"],
                                check_texts=data.test["text"].tolist()[:SERVING_CHECK_TEXTS],
                                info=serving, log=log)
    out["serving_graph"] = serving
    out["export_seconds"] = time.perf_counter() - t
    out["export_dir"] = str(version)
    out["export_mb"] = sum(f.stat().st_size for f in Path(version).rglob("*") if f.is_file()) / 2 ** 20
    out["vm_hwm_mb_export"] = vm_hwm_mb()
    return out


def native_classifier(tf, keras, spec, n_classes: int):
    """build_classifier's default (pooled) head over tfbert.bert.build_encoder itself, no SavedModel round trip."""
    from tfbert.bert import INPUT_KEYS, build_encoder, load_hf_weights
    from tfbert.checkpoint import read_checkpoint
    ckpt = read_checkpoint(spec["checkpoint_source"])
    encoder = build_encoder(ckpt.config, seed=spec["seed"], precision=spec["encoder_precision"])
    load_hf_weights(encoder, ckpt.config, ckpt.load_weights(), str(ckpt.weights_file))
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    x = encoder(inputs)["pooled_output"]
    x = keras.layers.Dropout(0.1, seed=spec["seed"], name="head_dropout")(x)
    logits = keras.layers.Dense(n_classes, name="logits", kernel_initializer=keras.initializers.TruncatedNormal(
        stddev=0.02, seed=spec["seed"]))(x)
    return keras.Model(inputs, logits, name="classifier")


def train_breakdown(tf, keras, model, pipe, data, spec) -> dict:
    """Per-step time split on the same fixed batches: input pipeline, forward, backward, optimizer."""
    k = spec.get("breakdown_batches", 30)
    ds = pipe.dataset(data.train, spec["batch_size"], shuffle=True, seed=spec["seed"] + 1)
    t = time.perf_counter()
    batches = list(ds.take(k))
    pipeline_seconds = time.perf_counter() - t  # cold: includes tokenizing the whole train split into the cache
    t = time.perf_counter()
    n = sum(1 for _ in ds.take(4 * k))
    pipeline_warm = (time.perf_counter() - t) / n
    sig = ({key: tf.TensorSpec([None, None], tf.int32) for key in batches[0][0]}, tf.TensorSpec([None], tf.int32))
    loss_fn = model.loss
    opt = model.optimizer
    variables = model.trainable_variables

    @tf.function(input_signature=sig)
    def forward(x, y):
        return loss_fn(y, model(x, training=True))

    @tf.function(input_signature=sig)
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, variables)

    @tf.function(input_signature=sig)
    def full_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.minimize(loss, variables, tape=tape)
        return loss

    grads = forward_backward(*batches[0])

    @tf.function
    def optimizer_only():
        opt.apply_gradients(zip(grads, variables))

    def timed(fn, per_batch=True):
        for x, y in batches:  # warm-up over every batch: oneDNN creates primitives per shape on first sight
            (fn(x, y) if per_batch else fn())
        total = 0.0
        for x, y in batches:
            s = time.perf_counter()
            r = fn(x, y) if per_batch else fn()
            tf.nest.map_structure(lambda v: v.numpy() if hasattr(v, "numpy") else v, r)
            total += time.perf_counter() - s
        return total / len(batches) * 1000

    res = {"batches": k, "mean_padded_len": float(np.mean([int(x["input_word_ids"].shape[1]) for x, _ in batches])),
           "pipeline_ms_per_batch_warm": pipeline_warm * 1000, "pipeline_first_k_seconds_cold": pipeline_seconds}
    res["forward_ms"] = timed(forward)
    res["forward_backward_ms"] = timed(forward_backward)
    res["optimizer_ms"] = timed(optimizer_only, per_batch=False)
    res["custom_step_ms"] = timed(full_step)
    res["backward_ms"] = res["forward_backward_ms"] - res["forward_ms"]
    res["optimizer_alternatives_ms"] = optimizer_alternatives(tf, keras, model, grads, spec)
    if spec.get("profile", True):
        res["op_profile"] = profile_ops(tf, lambda b: full_step(*b).numpy(), batches[:6],
                                        Path(spec["work_dir"]) / "profile")
    return res


def optimizer_alternatives(tf, keras, model, grads, spec) -> dict:
    """apply_gradients time of AdamW variants on the same gradients (prototypes of optimizer levers)."""
    from tfbert.model import NO_DECAY, make_optimizer
    variables = model.trainable_variables
    out = {}

    def bench(opt, pairs, reps=8):
        @tf.function
        def apply():
            opt.apply_gradients(pairs)
        apply()
        apply()
        t = time.perf_counter()
        for _ in range(reps):
            apply()
        return (time.perf_counter() - t) / reps * 1000

    pairs = list(zip(grads, variables))
    out["adamw_default_jit"] = bench(make_optimizer(5e-5, 1000), pairs)
    opt = make_optimizer(5e-5, 1000)
    opt.jit_compile = False
    out["adamw_no_jit"] = bench(opt, pairs)
    # Legacy Adam runs one fused C++ kernel (ResourceApplyAdam / ResourceSparseApplyAdam) per variable.
    out["legacy_adam_fused_no_decay"] = bench(keras.optimizers.legacy.Adam(5e-5, epsilon=1e-6), pairs)
    frozen = [(g, v) for g, v in pairs if "word_embeddings" not in v.name]
    out["adamw_default_jit_word_embeddings_frozen"] = bench(make_optimizer(5e-5, 1000), frozen)
    dense = [(tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v) for g, v in pairs]
    out["adamw_default_jit_dense_grads"] = bench(make_optimizer(5e-5, 1000), dense)
    table = [int(np.prod(v.shape)) for v in variables if "word_embeddings" in v.name]
    out["note"] = (f"{sum(int(np.prod(v.shape)) for v in variables)} trainable parameters, word embeddings "
                   f"{table[0] if table else 'frozen (not among them)'}; no-decay patterns {NO_DECAY}")
    return out


def profile_ops(tf, call, items, logdir: Path, top: int = 15) -> dict:
    """tf.profiler trace of call(item) over items (e.g. training steps), self time aggregated by op type and by
    op name (the profiler's framework_op_stats tool). call must wait for its result."""
    for item in items:  # every shape once before tracing (oneDNN primitive creation)
        call(item)
    tf.profiler.experimental.start(str(logdir))
    for item in items:
        call(item)
    tf.profiler.experimental.stop()
    try:
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
        paths = [str(p) for p in logdir.rglob("*.xplane.pb")]
        raw, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
        table = json.loads(raw)[0] if ok else None
    except Exception as e:  # the converter is private API: report, do not fail the benchmark
        return {"error": f"{type(e).__name__}: {e}"}
    if not table:
        return {"error": "no op stats"}
    cols = [c["id"] for c in table["cols"]]
    by_type: dict[str, float] = {}
    by_name: dict[str, float] = {}
    for row in table["rows"]:
        r = dict(zip(cols, [c.get("v") if c else None for c in row["c"]]))
        if r.get("host_or_device") not in (None, "Host"):
            continue
        by_type[r["type"]] = by_type.get(r["type"], 0.0) + float(r["total_self_time"])
        by_name[r["operation"]] = by_name.get(r["operation"], 0.0) + float(r["total_self_time"])
    total = sum(by_type.values()) or 1.0
    steps = len(items)
    return {"steps": steps, "self_ms_per_step": total / 1000 / steps,
            "by_type": [[k, round(v / 1000 / steps, 2), round(v / total, 3)]
                        for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:top]],
            "by_op": [[k, round(v / 1000 / steps, 2), round(v / total, 3)]
                      for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:top]],
            "columns": "op type or name, self ms per step, share of op self time"}


# --------------------------------------------------------------------------- phase: infer (tf + tf_text only)

def phase_infer(spec: dict) -> dict:
    tf = _setup_tf(spec)
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    banned = [m for m in sys.modules if m.split(".")[0] in ("tfbert", "tensorflow_hub", "tf_keras")]
    assert not banned, f"infer phase must import only tensorflow and tensorflow_text, not {banned[:5]}"

    with open(spec["test_file"], newline="", encoding="utf-8") as f:
        texts = [row[spec["text_column"]] for row in csv.DictReader(f)]
    t = time.perf_counter()
    model = tf.saved_model.load(spec["export_dir"])
    serve = model.signatures["serving_default"]
    out = {"load_seconds": time.perf_counter() - t, "n_test": len(texts)}

    bs = spec.get("infer_batch_size", 64)
    batches = [tf.constant(texts[i:i + bs]) for i in range(0, len(texts), bs)]
    t = time.perf_counter()
    serve(text=batches[0])["label_id"].numpy()
    out["first_call_seconds"] = time.perf_counter() - t
    for b in batches[1:2]:  # warm-up as the reference does: 2 batches
        serve(text=b)["label_id"].numpy()
    t = time.perf_counter()
    for b in batches:
        serve(text=b)["label_id"].numpy()
    dt = time.perf_counter() - t
    out["infer_examples_per_sec_b64"] = len(texts) / dt
    out["vm_hwm_mb_b64"] = vm_hwm_mb()

    # Tokenization share: the export's own preprocess model, same packing as tfbert.pipeline.TextPipeline.encode.
    pre = getattr(model, "preprocess", None)
    if pre is not None and hasattr(pre, "tokenize"):
        max_len = spec["max_seq_length"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def encode(t):
            ids = pre.tokenize(t).merge_dims(-2, -1)[:, :max_len]
            seq = tf.minimum(tf.maximum(tf.cast(tf.reduce_max(ids.row_lengths()), tf.int32), 0) + 2, max_len)
            return pre.bert_pack_inputs([ids], seq_length=seq)

        for b in batches[:2]:
            encode(b)
        t = time.perf_counter()
        encoded = [encode(b) for b in batches]
        out["tokenize_pack_seconds_b64"] = time.perf_counter() - t
        out["tokenize_share_b64"] = out["tokenize_pack_seconds_b64"] / dt
        out["model_only_examples_per_sec_b64_est"] = len(texts) / max(dt - out["tokenize_pack_seconds_b64"], 1e-9)
        # What the serving signature pads to: each request sorted by length, in chunks of serve_chunk texts,
        # each chunk padded to its own longest (tfbert.export.ClassifierServer). [padded length, texts] pairs.
        chunk, chunks = spec["serve_chunk"] or bs, []
        for e in encoded:
            lengths = sorted(int(x) for x in tf.reduce_sum(e["input_mask"], axis=1).numpy())
            chunks += [[lengths[i:i + chunk][-1], len(lengths[i:i + chunk])] for i in range(0, len(lengths), chunk)]
        out["infer_padded_chunks"] = chunks
        out["infer_real_tokens"] = int(sum(int(tf.reduce_sum(e["input_mask"])) for e in encoded))

    n = spec.get("latency_examples", 300)
    singles = [tf.constant([x]) for x in texts[:n]]
    for s in singles[:10]:
        serve(text=s)["label_id"].numpy()
    lat = []
    for s in singles:
        t = time.perf_counter()
        serve(text=s)["label_id"].numpy()
        lat.append((time.perf_counter() - t) * 1000)
    out["latency_ms_p50_b1"] = percentile(lat, 50)
    out["latency_ms_p99_b1"] = percentile(lat, 99)
    out["latency_ms_mean_b1"] = sum(lat) / len(lat)
    out["latency_examples"] = len(lat)
    out["vm_hwm_mb"] = vm_hwm_mb()  # the phase's peak: measured before the profiler adds its buffers
    if spec.get("profile"):
        out["op_profile_b64"] = profile_ops(tf, lambda b: serve(text=b)["label_id"].numpy(), batches[2:8],
                                            Path(spec["work_dir"]) / "profile-infer")
    return out


# --------------------------------------------------------------------------- phase: interleaved A/B

AB_CONFIGS = {"fp32": {"encoder_precision": "fp32"}, "bf16": {"encoder_precision": "bf16"},
              "native-fp32": {"native_encoder": 1, "encoder_precision": "fp32"},
              "native-bf16": {"native_encoder": 1, "encoder_precision": "bf16"}}


def phase_ab(spec: dict) -> dict:
    """Training step and raw-string serving time of several model configurations in ONE process, interleaved
    round by round on the same batches: relative figures that hold on a machine shared with other jobs."""
    tf = _setup_tf(spec)
    import tensorflow_hub as hub
    import tf_keras as keras

    sys.path.insert(0, str(REPO))
    from tfbert.data_tables import load_dataset
    from tfbert.export import ClassifierServer
    from tfbert.model import build_classifier, make_optimizer
    from tfbert.pipeline import TextPipeline, steps_per_epoch

    log = lambda *m: print(*m, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(spec["work_dir"])
    seed, bs = spec["seed"], spec["batch_size"]
    keras.utils.set_random_seed(seed)
    data = load_dataset(spec["train_file"], spec["test_file"], spec["test_file"], seed=seed, min_rows=bs)
    pipe = TextPipeline(hub.load(spec["preprocess"]), spec["max_seq_length"])
    batches = list(pipe.dataset(data.train, bs, shuffle=True, seed=seed).take(spec.get("ab_batches", 10)))
    texts = data.test["text"].tolist()
    infer_batches = [tf.constant(texts[i:i + 64]) for i in range(0, 64 * spec.get("ab_infer_batches", 8), 64)]
    sig = ({key: tf.TensorSpec([None, None], tf.int32) for key in batches[0][0]}, tf.TensorSpec([None], tf.int32))
    labels_file = work / "labels.txt"
    labels_file.write_text("".join(f"{x}\n" for x in data.labels))

    runners, info = {}, {}
    for name in spec.get("ab_configs", list(AB_CONFIGS)):
        cfg = {**spec, **AB_CONFIGS[name]}
        if cfg.get("native_encoder"):
            model = native_classifier(tf, keras, cfg, len(data.labels))
        else:
            model = build_classifier(spec["encoders"][cfg["encoder_precision"]], len(data.labels), seed=seed,
                                     freeze_word_embeddings=bool(spec["freeze_word_embeddings"]))
        opt = make_optimizer(spec["learning_rate"], steps_per_epoch(len(data.train), bs))
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def make_step(model=model, opt=opt, loss_fn=loss_fn):
            @tf.function(input_signature=sig)
            def step(x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                opt.minimize(loss, model.trainable_variables, tape=tape)
                return loss
            return step

        server = ClassifierServer(spec["preprocess"], model, data.labels, spec["max_seq_length"], labels_file)
        runners[name] = (make_step(), server.serve)
        info.setdefault("_keep", []).append(server)  # tf.function methods hold only a weak reference to self

    def run_train(step):
        t = time.perf_counter()
        for x, y in batches:
            step(x, y).numpy()
        return time.perf_counter() - t

    def run_serve(serve):
        t = time.perf_counter()
        for b in infer_batches:
            serve(b)["label_id"].numpy()
        return time.perf_counter() - t

    for step, serve in runners.values():  # warm-up: every batch shape once
        run_train(step)
        run_serve(serve)
    rounds = spec.get("ab_rounds", 7)
    times = {name: {"train": [], "serve": []} for name in runners}
    for r in range(rounds):
        order = list(runners) if r % 2 == 0 else list(runners)[::-1]
        for name in order:
            step, serve = runners[name]
            times[name]["train"].append(run_train(step))
            times[name]["serve"].append(run_serve(serve))
        log(f"A/B round {r + 1}/{rounds} done")
    n_train = sum(int(y.shape[0]) for _, y in batches)
    n_serve = sum(int(b.shape[0]) for b in infer_batches)
    out = {"rounds": rounds, "train_batches": len(batches), "serve_batches": len(infer_batches), "configs": {}}
    base = list(runners)[0]
    for name, t in times.items():  # best round: the least disturbed by other processes; median for reference
        tr, sv = min(t["train"]), min(t["serve"])
        out["configs"][name] = {"train_examples_per_sec": n_train / tr, "serve_examples_per_sec_b64": n_serve / sv,
                                "train_speedup_vs_" + base: min(times[base]["train"]) / tr,
                                "serve_speedup_vs_" + base: min(times[base]["serve"]) / sv,
                                "train_speedup_vs_" + base + "_median": percentile(times[base]["train"], 50) /
                                percentile(t["train"], 50),
                                "serve_speedup_vs_" + base + "_median": percentile(times[base]["serve"], 50) /
                                percentile(t["serve"], 50),
                                "train_seconds_per_round": t["train"], "serve_seconds_per_round": t["serve"],
                                **({"check": info[name]} if name in info else {})}
    info.pop("_keep")
    out["vm_hwm_mb"] = vm_hwm_mb()
    return out


PHASES = {"peak": phase_peak, "train": phase_train, "infer": phase_infer, "ab": phase_ab}


# --------------------------------------------------------------------------- orchestration

def _cpu_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (/proc/stat, all CPUs)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_child(cmd: list[str], log_path: Path, env: dict | None = None, cwd: str | None = None) -> dict:
    """Runs cmd with output to log_path. Returns exit code, wall seconds, peak RSS MB of the child (and its
    children), and `other_cpus`: the average number of CPUs kept busy by *other* processes meanwhile (machine
    busy time minus the child's CPU time, over the wall time): a measure of how contaminated the figures are."""
    t, busy = time.perf_counter(), _cpu_busy_seconds()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    others = max(0.0, _cpu_busy_seconds() - busy - usage.ru_utime - usage.ru_stime) / wall
    return {"code": proc.returncode, "wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "child_cpus": (usage.ru_utime + usage.ru_stime) / wall, "other_cpus": others}


def run_phase(name: str, spec: dict, work: Path, tag: str, env_extra: dict | None = None) -> dict:
    spec = {**spec, "result_path": str(work / f"{tag}-{name}.json")}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    if spec.get("onednn") is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = str(spec["onednn"])
    log_path = work / f"{tag}-{name}.log"
    print(f"  [{tag}] {name} ...", end=" ", flush=True)
    run = run_child([sys.executable, str(Path(__file__).resolve()), "--_phase", name, "--_spec", json.dumps(spec)],
                    log_path, env)
    if run["code"] != 0:
        tail = log_path.read_text()[-4000:]
        raise SystemExit(f"\nphase {name} ({tag}) failed with exit code {run['code']}; log {log_path}:\n{tail}")
    result = json.loads(Path(spec["result_path"]).read_text())
    result.update(run)
    print(f"{run['wall_seconds']:.0f}s, peak RSS {run['peak_rss_mb']:.0f} MB, "
          f"other processes used {run['other_cpus']:.2f} CPUs meanwhile", flush=True)
    return result


def summarize_train(r: dict, skip: int, cfg: dict | None, n_classes: int, peak_gflops: float | None) -> dict:
    times, shapes = r["step_seconds"], r["batch_shapes"]
    steady_t, steady_s = times[skip:], shapes[skip:]
    secs = sum(steady_t)
    examples = sum(s[0] for s in steady_s)
    out = {"steps": len(times), "steady_steps": len(steady_t),
           "train_examples_per_sec": examples / secs,
           "train_tokens_per_sec": sum(s[2] for s in steady_s) / secs,
           "train_padded_tokens_per_sec": sum(s[0] * s[1] for s in steady_s) / secs,
           "pad_fraction": 1 - sum(s[2] for s in steady_s) / sum(s[0] * s[1] for s in steady_s),
           "mean_padded_len": sum(s[1] for s in steady_s) / len(steady_s),
           "step_ms_median": 1000 * percentile(steady_t, 50), "first_steps_seconds": sum(times[:skip]),
           "fit_seconds": r["fit_seconds"], "loss_first_last": r["loss_first_last"]}
    if cfg:
        flops = sum(3 * s[0] * flops_per_example(s[1], cfg, n_classes) for s in steady_s)
        out["train_tflops_per_sec"] = flops / secs / 1e12
        out["train_gflop_per_example"] = flops / examples / 1e9
        if peak_gflops:
            out["mfu"] = flops / secs / (peak_gflops * 1e9)
    return out


def fmt(x, digits=1):
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def run_variant(name: str, vspec: dict, base: dict, work: Path, peak: dict, cfg: dict | None, n_classes: int,
                a: argparse.Namespace, encoder_for) -> dict:
    spec = {**base, **vspec, "work_dir": str(work / name)}
    enc = encoder_for(vspec.get("precision", "auto"))
    spec.update(encoder=enc.encoder, preprocess=enc.preprocess, encoder_precision=enc.precision)
    # The forward/backward/optimizer split and op profile: for the default and the precision levers.
    spec["breakdown"] = base["breakdown"] and (name == "default" or "precision" in vspec)
    Path(spec["work_dir"]).mkdir()
    tr = run_phase("train", spec, work, name)
    inf = run_phase("infer", {**spec, "export_dir": tr["export_dir"], "profile": spec["breakdown"]}, work, name)
    precision = vspec.get("precision", "auto")
    peak_gflops = peak["fp32_gflops"] if enc.precision == "fp32" else peak["bf16_gflops"]
    s = summarize_train(tr, a.skip, cfg, n_classes, peak_gflops)
    if cfg:
        s["mfu_vs_fp32_peak"] = s["train_tflops_per_sec"] * 1e3 / peak["fp32_gflops"]
    s.update({k: inf[k] for k in ("infer_examples_per_sec_b64", "latency_ms_p50_b1", "latency_ms_p99_b1",
                                  "latency_ms_mean_b1", "model_only_examples_per_sec_b64_est") if k in inf})
    for k in ("tokenize_share_b64", "load_seconds", "first_call_seconds"):
        if k in inf:
            s["infer_" + k] = inf[k]
    if cfg and inf.get("infer_padded_chunks"):
        chunks = inf["infer_padded_chunks"]
        cls_only = tr.get("serving_graph", {}).get("graph") == "inference"  # default pooling: pooled
        flops = sum(flops_per_example(length, cfg, n_classes, cls_only) * count for length, count in chunks)
        s["infer_mfu_b64"] = flops * inf["infer_examples_per_sec_b64"] / inf["n_test"] / (peak_gflops * 1e9)
        s["infer_pad_fraction_b64"] = 1 - inf["infer_real_tokens"] / sum(length * count for length, count in chunks)
    s["peak_rss_mb"] = {"train": tr["vm_hwm_mb_train"], "train_process_incl_export": tr["peak_rss_mb"],
                        "infer": inf["vm_hwm_mb"], "infer_process": inf["peak_rss_mb"]}
    s["other_cpus_during"] = {"train": tr["other_cpus"], "infer": inf["other_cpus"]}
    s["export_seconds"], s["export_mb"] = tr["export_seconds"], tr["export_mb"]
    s["serving_graph"] = tr.get("serving_graph")
    for k in ("bf16_policy", "breakdown"):
        if k in tr:
            s[k] = tr[k]
    if "op_profile_b64" in inf:
        s["infer_op_profile_b64"] = inf["op_profile_b64"]
    s["settings"] = {"precision": precision, "encoder_precision": enc.precision, "encoder_handle": enc.encoder,
                     "freeze_word_embeddings": spec["freeze_word_embeddings"],
                     "intra_op_threads": vspec.get("intra", "TF default (0)"),
                     "inter_op_threads": vspec.get("inter", "TF default (0)"),
                     "TF_ENABLE_ONEDNN_OPTS": vspec.get("onednn", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (1)")),
                     **{k: v for k, v in vspec.items() if k not in ("precision", "intra", "inter", "onednn")}}
    return s


def run_reference(a: argparse.Namespace, checkpoint: str, train_csv: Path, test_csv: Path, work: Path):
    out = work / "hf_reference.json"
    cmd = [a.reference_python, a.reference_script, "--model-dir", checkpoint, "--train-file", str(train_csv),
           "--test-file", str(test_csv), "--mode", "bench", "--bench-steps", str(a.steps),
           "--batch-size", str(a.batch_size), "--max-length", str(a.max_seq_length), "--seed", str(a.seed),
           "--lr", str(a.learning_rate), "--out", str(out)]
    print("  [reference] hf_reference.py --mode bench ...", end=" ", flush=True)
    run = run_child(cmd, work / "reference.log", cwd=str(Path(a.reference_script).parent))
    if run["code"] != 0:
        raise SystemExit(f"reference failed ({run['code']}); log:\n{(work / 'reference.log').read_text()[-4000:]}")
    print(f"{run['wall_seconds']:.0f}s, peak RSS {run['peak_rss_mb']:.0f} MB, "
          f"other processes used {run['other_cpus']:.2f} CPUs meanwhile", flush=True)
    reference = json.loads(out.read_text())
    Path(a.reference_out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.reference_out).write_text(json.dumps(reference, indent=2))
    return reference, {"source": a.reference_out, **{k: run[k] for k in ("wall_seconds", "peak_rss_mb", "other_cpus")},
                       "command": cmd}


def compare(results: dict, reference: dict | None, ref_run: dict | None) -> dict | None:
    """Reference figures, and ratios tfbert / reference-best written into each variant's summary."""
    if not reference:
        return None
    pick = lambda fmt, key: {p: reference[fmt.format(p)][key] for p in ("fp32", "bf16")  # noqa: E731
                             if fmt.format(p) in reference}
    ref = {"train_examples_per_sec": pick("train_{}", "train_examples_per_sec"),
           "train_tokens_per_sec": pick("train_{}", "train_real_tokens_per_sec"),
           "infer_examples_per_sec_b64": pick("infer_{}", "infer_examples_per_sec_batch64"),
           "accuracy_after_bench": pick("infer_{}", "accuracy"),
           "note": "reference inference is model time only (tokenization excluded); tfbert's includes it",
           **(ref_run or {})}
    best = {k: max(ref[k].values()) for k in ("train_examples_per_sec", "train_tokens_per_sec",
                                               "infer_examples_per_sec_b64")}
    ref["best"] = best
    for s in results.values():
        s["vs_reference"] = {
            "train_ratio": s["train_examples_per_sec"] / best["train_examples_per_sec"],
            "train_tokens_ratio": s["train_tokens_per_sec"] / best["train_tokens_per_sec"],
            "infer_ratio": s["infer_examples_per_sec_b64"] / best["infer_examples_per_sec_b64"],
            "model_only_infer_ratio": (s["model_only_examples_per_sec_b64_est"] / best["infer_examples_per_sec_b64"]
                                       if "model_only_examples_per_sec_b64_est" in s else None)}
    return ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-file", help="CSV/TSV/JSONL/Parquet; default: the built-in tweet corpus")
    ap.add_argument("--test-file", help="default: the stratified test split of the train data")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--encoder", default="minilm-l6", help="tfbert encoder name or handle (default minilm-l6)")
    ap.add_argument("--steps", type=int, default=100, help="training steps measured (default 100)")
    ap.add_argument("--skip", type=int, default=10, help="first steps excluded from throughput (tracing)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-examples", type=int, default=300, help="batch-1 calls for p50/p99")
    ap.add_argument("--variant", action="append", default=[],
                    help=f"training/inference variant to run besides the default: {', '.join(VARIANTS)} "
                         "or key=value,... (precision=auto|fp32|bf16|onednn-amp, intra=N, inter=N, onednn=0|1)")
    ap.add_argument("--levers", action="store_true", help=f"run the lever prototypes: {', '.join(LEVERS)}")
    ap.add_argument("--ab", action="store_true",
                    help=f"also an interleaved in-process A/B of {', '.join(AB_CONFIGS)} (robust to machine load)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the forward/backward/optimizer split")
    ap.add_argument("--no-default", action="store_true", help="run only the --variant runs")
    ap.add_argument("--export-splits", help="write train.csv/test.csv (text,label) here (default: a temp dir)")
    ap.add_argument("--reference-json", help="an existing hf_reference.py --mode bench result to compare with")
    ap.add_argument("--no-reference", action="store_true", help="do not run the Hugging Face reference")
    ap.add_argument("--reference-script", default=DEFAULT_REFERENCE_SCRIPT)
    ap.add_argument("--reference-python", default=DEFAULT_REFERENCE_PYTHON)
    ap.add_argument("--reference-out", default=str(HERE / "results" / "hf_reference.json"),
                    help="where a fresh reference result is copied")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--keep-work", action="store_true", help="keep the temp dir (logs, exports)")
    ap.add_argument("--_phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--_spec", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a._phase:  # inside a phase subprocess
        spec = json.loads(a._spec)
        result = PHASES[a._phase](spec)
        Path(spec["result_path"]).write_text(json.dumps(result))
        return 0

    variants = ([] if a.no_default else [("default", {})]) + [parse_variant(v) for v in (LEVERS if a.levers else [])]
    variants += [parse_variant(v) for v in a.variant if v not in dict(variants)]
    if not variants and not a.ab:
        raise SystemExit("nothing to run: --no-default without --variant/--levers/--ab")

    sys.path.insert(0, str(REPO))
    from tfbert.convert import read_metadata
    from tfbert.data_tables import load_dataset
    from tfbert.registry import resolve_encoder, resolve_precision
    from tfbert.export import SERVE_CHUNK
    from tfbert.train import apply_task_defaults, build_parser
    train_defaults = build_parser().parse_args([])
    apply_task_defaults(train_defaults)

    work = Path(tempfile.mkdtemp(prefix="tfbert-bench-"))  # left in place when a phase fails
    t_start = time.time()
    print(f"work dir {work}")
    data = load_dataset(a.train_file, None, a.test_file, text_column=a.text_column, label_column=a.label_column,
                        seed=a.seed, min_rows=a.batch_size)
    split_dir = Path(a.export_splits) if a.export_splits else work / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = split_dir / "train.csv", split_dir / "test.csv"
    data.train[["text", "label"]].to_csv(train_csv, index=False)
    data.test[["text", "label"]].to_csv(test_csv, index=False)
    print(f"data: {len(data.train)} train / {len(data.test)} test rows ({len(data.labels)} classes); splits in {split_dir}")

    encoders = {}

    def encoder_for(precision: str):
        """tfbert's handles for the encoder at a variant's precision (auto -> what tfbert.train picks)."""
        p = resolve_precision(encoder_precision(precision), a.encoder)
        if p not in encoders:
            encoders[p] = resolve_encoder(a.encoder, log=print, precision=p)
        return encoders[p]

    handles = encoder_for("fp32")
    meta = read_metadata(Path(handles.encoder).parent)
    cfg, checkpoint = meta.get("config"), meta.get("source")
    base = {"train_file": str(train_csv), "test_file": str(test_csv), "text_column": "text", "label_column": "label",
            "encoder": handles.encoder, "preprocess": handles.preprocess, "checkpoint_source": checkpoint,
            "seed": a.seed, "batch_size": a.batch_size, "steps": a.steps, "learning_rate": a.learning_rate,
            "max_seq_length": a.max_seq_length, "latency_examples": a.latency_examples,
            "breakdown": not a.no_breakdown, "serve_chunk": SERVE_CHUNK,
            # what `python -m tfbert.train` does unless told otherwise
            "freeze_word_embeddings": int(train_defaults.freeze_word_embeddings)}

    peak = run_phase("peak", {}, work, "machine")
    results, reference, ref_run = {}, None, None
    if a.reference_json:
        reference = json.loads(Path(a.reference_json).read_text())
        ref_run = {"source": str(a.reference_json)}
    for i, (name, vspec) in enumerate(variants):
        if vspec.get("precision") == "bf16" and resolve_precision("auto", a.encoder) != "bf16" and not checkpoint:
            print(f"  [{name}] skipped: bf16 needs an encoder tfbert converts itself")
            continue
        results[name] = run_variant(name, vspec, base, work, peak, cfg, len(data.labels), a, encoder_for)
        if i == 0 and reference is None and not a.no_reference:  # back to back with the first (default) run
            if not (checkpoint and Path(a.reference_script).is_file() and Path(a.reference_python).is_file()):
                print("  [reference] skipped: needs the Hugging Face checkpoint behind the encoder, "
                      f"{a.reference_script} and {a.reference_python}")
            else:
                reference, ref_run = run_reference(a, checkpoint, train_csv, test_csv, work)
    ref = compare(results, reference, ref_run)
    ab = None
    if a.ab:
        Path(work / "ab").mkdir()
        ab_encoders = {p: encoder_for(p).encoder for p in ("fp32", "bf16")}
        ab = run_phase("ab", {**base, "work_dir": str(work / "ab"), "encoders": ab_encoders}, work, "ab")

    first = next(iter(results), None)
    main_res = results.get(first, {})
    report = {
        "benchmark": "tfbert benchmarks/bench.py", "variant": first,
        **{k: main_res.get(k) for k in ("train_examples_per_sec", "train_tokens_per_sec", "infer_examples_per_sec_b64",
                                        "latency_ms_p50_b1", "latency_ms_p99_b1", "mfu", "peak_rss_mb")},
        "vs_reference": main_res.get("vs_reference"),
        "targets": {"train_ratio_min": 1.5, "infer_ratio_min": 1.5},
        "settings": {"encoder": a.encoder, "encoder_handle": handles.encoder, "encoder_config": cfg,
                     "data": a.train_file or "built-in tweets (tfbert.data_tables.load_dataset)",
                     "test_file": a.test_file or "stratified test split", "n_train": len(data.train),
                     "n_test": len(data.test), "labels": data.labels, "steps": a.steps, "skip": a.skip,
                     "batch_size": a.batch_size, "infer_batch_size": 64, "max_seq_length": a.max_seq_length,
                     "seed": a.seed, "learning_rate": a.learning_rate, "latency_examples": a.latency_examples},
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_name(), "python": platform.python_version(),
                    "tensorflow": _version("tensorflow"), "tf_keras": _version("tf_keras"),
                    "tensorflow_text": _version("tensorflow_text"),
                    "matmul_peak_gflops": {"fp32": peak["fp32_gflops"], "bf16": peak["bf16_gflops"], "n": peak["n"]},
                    "load_during_run": _loadavg()},
        "variants": results, "reference": ref, "ab": ab,
        "notes": ["train throughput: steps after the first `skip` (tracing), time between consecutive batch ends "
                  "(input pipeline included), like the reference",
                  "tokens = real (non-pad) tokens; MFU = matmul FLOPs (3 x forward, padded lengths) / measured matmul "
                  "peak of the same dtype",
                  "inference: exported SavedModel, raw strings in (tokenization included), test split in file order",
                  "XLA jit_compile not benchmarked: per-batch dynamic shapes recompile (> 500 s for a 54-step epoch)"],
        "total_seconds": time.time() - t_start,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2, default=float))
    print_table(results, ref, peak, ab)
    print(f"\nwrote {a.out}")
    if a.keep_work:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(results: dict, ref: dict | None, peak: dict, ab: dict | None = None) -> None:
    print(f"\nmatmul peak: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, bf16 {peak['bf16_gflops']:.0f} GFLOP/s")
    head = ["variant", "train ex/s", "train tok/s", "MFU", "infer ex/s b64", "p50 ms b1", "p99 ms b1",
            "RSS train MB", "RSS infer MB", "train x ref", "infer x ref"]
    rows = []
    for name, s in results.items():
        vs = s.get("vs_reference") or {}
        rows.append([name, fmt(s["train_examples_per_sec"]), fmt(s["train_tokens_per_sec"], 0),
                     fmt(s.get("mfu"), 3), fmt(s["infer_examples_per_sec_b64"]), fmt(s["latency_ms_p50_b1"]),
                     fmt(s["latency_ms_p99_b1"]), fmt(s["peak_rss_mb"]["train"], 0), fmt(s["peak_rss_mb"]["infer"], 0),
                     fmt(vs.get("train_ratio"), 2), fmt(vs.get("infer_ratio"), 2)])
    if ref:
        for p in ("fp32", "bf16"):
            if p in ref["train_examples_per_sec"]:
                rows.append([f"HF reference {p}", fmt(ref["train_examples_per_sec"][p]),
                             fmt(ref["train_tokens_per_sec"][p], 0), "-",
                             fmt(ref["infer_examples_per_sec_b64"].get(p)) + "*", "-", "-", "-", "-", "", ""])
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if ref:
        print("* reference inference: model time only, tokenization excluded; tfbert's includes tokenization. "
              "Ratios are against the reference's best (fp32 or bf16). Targets: >= 1.5 for both.")
    if ab:
        print(f"\ninterleaved A/B in one process (best of {ab['rounds']} rounds; other processes used "
              f"{ab['other_cpus']:.2f} CPUs meanwhile)")
        base = next(iter(ab["configs"]))
        print(f"{'config':<12} {'train ex/s':>10} {'x ' + base:>12} {'serve ex/s b64':>15} {'x ' + base:>12}")
        for name, c in ab["configs"].items():
            print(f"{name:<12} {c['train_examples_per_sec']:>10.1f} {c['train_speedup_vs_' + base]:>12.2f} "
                  f"{c['serve_examples_per_sec_b64']:>15.1f} {c['serve_speedup_vs_' + base]:>12.2f}")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return None


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


if __name__ == "__main__":
    sys.exit(main())
