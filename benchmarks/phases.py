"""The measured phases, each run in its own subprocess (`bench.py --_phase NAME --_spec JSON`, see run_phase):

  peak    large tf.linalg.matmul (fp32, bf16): the machine's matmul peak, the MFU denominator
  train   TextPipeline + build_classifier + make_optimizer, model.fit with a timing callback, then the
          forward/backward/optimizer breakdown and op profile (unless --no-breakdown), then
          tfbert.export.classifier.export_classifier into the work dir
  infer   the exported SavedModel in a process that imports only tensorflow and tensorflow_text: batch-64
          throughput over the test split (raw strings in, tokenization included), batch-1 latency p50/p99
  ab      levers.phase_ab: the interleaved in-process A/B (--ab)

A phase takes the spec dict from the parent and returns a JSON-able dict; run_phase adds the child's wall time,
peak RSS (ru_maxrss from os.wait4) and the other processes' CPU use. Phases also read VmHWM at their boundaries.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

from levers import native_classifier, optimizer_alternatives, phase_ab, setup_tf
from measure import describe_run, percentile, run_child, vm_hwm_mb

BENCH = Path(__file__).resolve().with_name("bench.py")  # the phase processes' entry point


def run_phase(name: str, spec: dict, work: Path, tag: str, env_extra: dict | None = None) -> dict:
    """Runs PHASES[name](spec) in a fresh `bench.py --_phase` process; exits with its log tail if it fails."""
    spec = {**spec, "result_path": str(work / f"{tag}-{name}.json")}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    if spec.get("onednn") is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = str(spec["onednn"])
    if name == "infer":  # a serving process as a user's: not the tf_keras alias `import tfbert` sets
        env.pop("TF_USE_LEGACY_KERAS", None)
    log_path = work / f"{tag}-{name}.log"
    print(f"  [{tag}] {name} ...", end=" ", flush=True)
    run = run_child([sys.executable, str(BENCH), "--_phase", name, "--_spec", json.dumps(spec)], log_path, env)
    if run["code"] != 0:
        tail = log_path.read_text()[-4000:]
        raise SystemExit(f"\nphase {name} ({tag}) failed with exit code {run['code']}; log {log_path}:\n{tail}")
    result = json.loads(Path(spec["result_path"]).read_text())
    result.update(run)
    print(describe_run(run), flush=True)
    return result


# --------------------------------------------------------------------------- peak: matmul

def phase_peak(spec: dict) -> dict:
    tf = setup_tf(spec)
    n, reps = spec.get("n", 4096), spec.get("reps", 5)
    out = {"n": n, "bf16_gflops": None}
    from tfbert.encoders.registry import cpu_has_bf16
    # Under an ISA cap below bf16 (bench.py --max-isa AVX2) TensorFlow still hands bf16 matmuls to oneDNN, which
    # then crashes (SIGSEGV, TF 2.21); a real AVX2-only CPU takes Eigen's path. No bf16 peak then: nothing runs bf16.
    dtypes = (("fp32", tf.float32),) + ((("bf16", tf.bfloat16),) if cpu_has_bf16() else ())
    for name, dtype in dtypes:
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


# --------------------------------------------------------------------------- train (+ breakdown, export)

def phase_train(spec: dict) -> dict:
    tf = setup_tf(spec)
    import numpy as np
    import tensorflow_hub as hub
    import tf_keras as keras

    from tfbert.data.classification import load_dataset
    from tfbert.data.inputs import InputSettings
    from tfbert.data.pipeline import TextPipeline, steps_per_epoch
    from tfbert.export.classifier import export_classifier
    from tfbert.export.serving_core import SERVING_CHECK_TEXTS
    from tfbert.optim import make_optimizer
    from tfbert.tasks.classification import build_classifier

    log = lambda *m: print(*m, file=sys.stderr, flush=True)
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

    # repeat(): --steps may run past one epoch of a small --train-file.
    train_ds = pipe.dataset(data.train, bs, shuffle=True, seed=seed).repeat().map(record)
    epoch_steps = steps_per_epoch(len(data.train), bs)
    if spec.get("native_encoder"):
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
    if spec.get("lean_export"):  # lever prototype: the same layers in a fresh, uncompiled Model (no optimizer slots)
        core = keras.Model(model.inputs, model.outputs, name="classifier")
    t = time.perf_counter()
    serving = {}
    version = export_classifier(core, preprocess, data.labels, work / "export", inputs=InputSettings(spec["max_seq_length"]),
                                encoder_handle=spec["encoder"],
                                check_texts=data.test["text"].tolist()[:SERVING_CHECK_TEXTS],
                                info=serving, log=log)
    out["serving_graph"] = serving
    out["export_seconds"] = time.perf_counter() - t
    out["export_dir"] = str(version)
    out["export_mb"] = sum(f.stat().st_size for f in Path(version).rglob("*") if f.is_file()) / 2 ** 20
    out["vm_hwm_mb_export"] = vm_hwm_mb()
    return out


def train_breakdown(tf, keras, model, pipe, data, spec) -> dict:
    """Per-step time split on the same fixed batches: input pipeline, forward, backward, optimizer."""
    import numpy as np
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
    res["optimizer_alternatives_ms"] = optimizer_alternatives(tf, keras, model, grads)
    if spec.get("profile", True):
        res["op_profile"] = profile_ops(tf, lambda b: full_step(*b).numpy(), batches[:6],
                                        Path(spec["work_dir"]) / "profile")
    return res


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


# --------------------------------------------------------------------------- infer (tensorflow + tensorflow_text only)

def phase_infer(spec: dict) -> dict:
    tf = setup_tf(spec)
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

    # Tokenization share: the export's own preprocess model, packed as tfbert.data.pipeline.TextPipeline.encode does.
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
        # What the serving signature pads to: each request sorted by length, in chunks of serve_chunk texts, each
        # chunk padded to its own longest (tfbert.export.classifier.ClassifierServer). [padded length, texts] pairs.
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


PHASES = {"peak": phase_peak, "train": phase_train, "infer": phase_infer, "ab": phase_ab}
