"""Lever prototypes: the named variants (--variant, --levers), the settings they apply inside a phase process, the
prototypes that live here rather than in tfbert/, and the interleaved A/B phase (--ab) that compares them.

A variant is a named entry of VARIANTS or any "key=value,..." string with the keys of VARIANT_KEYS:
  precision               auto | fp32 | bf16 (tfbert's converter), or onednn-amp: grappler's
                          auto_mixed_precision_onednn_bfloat16 over the fp32 encoder
  intra, inter            TF intra-/inter-op thread counts
  onednn                  TF_ENABLE_ONEDNN_OPTS for the phase processes
  lean_export             export a fresh uncompiled Model over the same layers (no optimizer slots)
  native_encoder          tfbert.encoders.bert.build_encoder in-process instead of hub.KerasLayer over the
                          converted SavedModel
  freeze_word_embeddings  override `python -m tfbert.train`'s task default
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from measure import percentile, vm_hwm_mb

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
VARIANT_KEYS = ("precision", "intra", "inter", "onednn", "lean_export", "native_encoder", "freeze_word_embeddings")


def encoder_precision(precision: str) -> str:
    """The precision tfbert builds the encoder in for a variant's precision setting."""
    return "fp32" if precision == "onednn-amp" else precision


def parse_variant(text: str) -> tuple[str, dict]:
    """--variant NAME or key=value,... -> (name, settings)."""
    if text in VARIANTS:
        return text, dict(VARIANTS[text])
    spec = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in VARIANT_KEYS or not value:
            raise SystemExit(f"bad --variant {text!r}: use one of {', '.join(VARIANTS)} or key=value,... "
                             f"with keys {', '.join(VARIANT_KEYS)}")
        spec[key] = value if key == "precision" else int(value)
    if spec.get("precision", "fp32") not in PRECISIONS:
        raise SystemExit(f"bad precision {spec['precision']!r}: one of {', '.join(PRECISIONS)}")
    return text, spec


def setup_tf(spec: dict):
    """Imports TensorFlow with the variant's thread and grappler settings; call before the process's first TF op."""
    import tensorflow as tf
    if spec.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(int(spec["intra"]))
    if spec.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(int(spec["inter"]))
    if spec.get("precision") == "onednn-amp":
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    return tf


def native_classifier(tf, keras, spec, n_classes: int):
    """build_classifier's default (pooled) head over tfbert.encoders.bert.build_encoder itself, no SavedModel
    round trip."""
    from tfbert.encoders.bert import INPUT_KEYS, build_encoder, load_hf_weights
    from tfbert.encoders.checkpoint import read_checkpoint
    ckpt = read_checkpoint(spec["checkpoint_source"])
    encoder = build_encoder(ckpt.config, seed=spec["seed"], precision=spec["encoder_precision"])
    load_hf_weights(encoder, ckpt.config, ckpt.load_weights(), str(ckpt.weights_file))
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    x = encoder(inputs)["pooled_output"]
    x = keras.layers.Dropout(0.1, seed=spec["seed"], name="head_dropout")(x)
    logits = keras.layers.Dense(n_classes, name="logits", kernel_initializer=keras.initializers.TruncatedNormal(
        stddev=0.02, seed=spec["seed"]))(x)
    return keras.Model(inputs, logits, name="classifier")


def optimizer_alternatives(tf, keras, model, grads) -> dict:
    """apply_gradients time of AdamW variants on the same gradients (prototypes of optimizer levers)."""
    import numpy as np

    from tfbert.optim import NO_DECAY, make_optimizer
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


# --------------------------------------------------------------------------- phase: interleaved A/B (--ab)

AB_CONFIGS = {"fp32": {"encoder_precision": "fp32"}, "bf16": {"encoder_precision": "bf16"},
              "native-fp32": {"native_encoder": 1, "encoder_precision": "fp32"},
              "native-bf16": {"native_encoder": 1, "encoder_precision": "bf16"}}


def phase_ab(spec: dict) -> dict:
    """Training step and raw-string serving time of several model configurations in ONE process, interleaved
    round by round on the same batches: relative figures that hold on a machine shared with other jobs."""
    tf = setup_tf(spec)
    import tensorflow_hub as hub
    import tf_keras as keras

    from tfbert.data.classification import load_dataset
    from tfbert.data.inputs import InputSettings
    from tfbert.data.pipeline import TextPipeline, steps_per_epoch
    from tfbert.export.classifier import ClassifierServer
    from tfbert.optim import make_optimizer
    from tfbert.tasks.classification import build_classifier

    log = lambda *m: print(*m, file=sys.stderr, flush=True)
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

    runners, servers = {}, []
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

        server = ClassifierServer(spec["preprocess"], model, data.labels, InputSettings(spec["max_seq_length"]), labels_file)
        runners[name] = (make_step(), server.serve)
        servers.append(server)  # tf.function methods hold only a weak reference to self

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
                                "train_seconds_per_round": t["train"], "serve_seconds_per_round": t["serve"]}
    out["vm_hwm_mb"] = vm_hwm_mb()
    return out
