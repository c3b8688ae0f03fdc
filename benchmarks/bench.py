#!/usr/bin/env python
"""tfbert benchmark: training throughput, exported-model inference, memory, MFU, and the Hugging Face reference.

    python benchmarks/bench.py                                   # default encoder, built-in tweets, 100 steps
    python benchmarks/bench.py --train-file a.csv --test-file b.csv --text-column review --label-column stars
    python benchmarks/bench.py --variant fp32                    # also the fp32 encoder (default: tfbert's own)
    python benchmarks/bench.py --levers                          # fp32, grappler-AMP, thread settings, ...
    python benchmarks/bench.py --reference-python VENV/bin/python  # also run the Hugging Face reference
    python benchmarks/bench.py --reference-json ref.json         # reuse an existing reference result

Every measured phase (matmul peak, train + export, infer; phases.py) runs in its own subprocess, so each has its
own peak RSS. Then the reference runs on the very same train/test splits (written as CSV, columns text,label),
and the ratios tfbert / reference-best go into the JSON (default benchmarks/results/latest.json).

The reference (reference.py) needs a Python with torch + transformers:
  --reference-python PATH or $TFBERT_REFERENCE_PYTHON   no default: without either the reference is skipped
  --reference-script PATH or $TFBERT_REFERENCE_SCRIPT   default benchmarks/reference/hf_finetune.py

The default variant is what `python -m tfbert.train` does (--precision auto: the bf16 encoder on a CPU with
native bf16; the sentiment task's defaults). Other variants (levers.py): fp32 / bf16 (tfbert's converter at that
precision), and prototypes that live here, not in tfbert/: onednn-amp (grappler auto_mixed_precision_onednn_bfloat16
over the fp32 encoder), thread settings, TF_ENABLE_ONEDNN_OPTS, lean-export, native-encoder. XLA jit_compile is
not benchmarked (with per-batch dynamic shapes it recompiles per shape: > 500 s for one 54-step epoch here).

Modules: bench.py (this: command line, orchestration, report), phases.py, levers.py, flops.py (FLOPs, MFU),
reference.py, measure.py (child processes' time, memory and the machine's other load).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from flops import mfu, serving_flops, train_flops
from levers import AB_CONFIGS, LEVERS, VARIANTS, encoder_precision, parse_variant
from measure import cap_isa, machine, percentile
from phases import PHASES, run_phase
from reference import compare, locate, run_reference

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def build_parser() -> argparse.ArgumentParser:
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
    ap.add_argument("--reference-json", help="an existing reference --mode bench result (JSON) to compare with")
    ap.add_argument("--no-reference", action="store_true", help="do not run the Hugging Face reference")
    ap.add_argument("--reference-script",
                    help="the peer script (default: $TFBERT_REFERENCE_SCRIPT, else "
                         "benchmarks/reference/hf_finetune.py)")
    ap.add_argument("--reference-python",
                    help="Python with torch + transformers for the reference (default: $TFBERT_REFERENCE_PYTHON; "
                         "without either the reference is skipped)")
    ap.add_argument("--reference-out", default=str(HERE / "results" / "hf_reference.json"),
                    help="where a fresh reference result is copied")
    ap.add_argument("--max-isa", metavar="ISA",
                    help="cap oneDNN, MKL and PyTorch at this instruction set in every phase and in the reference "
                         "(e.g. AVX2: an AVX2-only CPU reproduced on a newer one; --precision auto then picks fp32)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--keep-work", action="store_true", help="keep the temp dir (logs, exports)")
    ap.add_argument("--_phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--_spec", help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    sys.path.insert(0, str(REPO))  # tfbert from this checkout, in the parent and in every phase process

    if a._phase:  # inside a phase subprocess
        spec = json.loads(a._spec)
        result = PHASES[a._phase](spec)
        Path(spec["result_path"]).write_text(json.dumps(result))
        return 0

    if a.max_isa:
        print(f"instruction set capped for every phase and the reference: {cap_isa(a.max_isa)}")
    variants = ([] if a.no_default else [("default", {})]) + [parse_variant(v) for v in (LEVERS if a.levers else [])]
    variants += [parse_variant(v) for v in a.variant if v not in dict(variants)]
    if not variants and not a.ab:
        raise SystemExit("nothing to run: --no-default without --variant/--levers/--ab")
    ref_exe = None if a.no_reference or a.reference_json else locate(a.reference_script, a.reference_python)

    from tfbert.config import RunConfig
    from tfbert.data.classification import load_dataset
    from tfbert.encoders.convert import read_metadata
    from tfbert.encoders.registry import resolve_encoder, resolve_precision
    from tfbert.export.base import SERVE_CHUNK
    from tfbert.files import write_table
    from tfbert.tasks import TASKS
    train_defaults = RunConfig(task="sentiment").with_task_defaults(TASKS["sentiment"])

    work = Path(tempfile.mkdtemp(prefix="tfbert-bench-"))  # left in place when a phase fails
    t_start = time.time()
    print(f"work dir {work}")
    data = load_dataset(a.train_file, None, a.test_file, text_column=a.text_column, label_column=a.label_column,
                        seed=a.seed, min_rows=a.batch_size)
    split_dir = Path(a.export_splits) if a.export_splits else work / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = split_dir / "train.csv", split_dir / "test.csv"
    write_table(train_csv, data.train[["text", "label"]])  # quoted: texts with \r or quotes keep their rows
    write_table(test_csv, data.test[["text", "label"]])
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
        if i == 0 and ref_exe:  # back to back with the first (default) run
            if not checkpoint:
                print("  [reference] skipped: needs the Hugging Face checkpoint behind the encoder")
            else:
                reference, ref_run = run_reference(*ref_exe, checkpoint, train_csv, test_csv, work, a,
                                                   a.reference_out)
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
                     "data": a.train_file or "built-in tweets (tfbert.data.tweets)",
                     "test_file": a.test_file or "stratified test split", "n_train": len(data.train),
                     "n_test": len(data.test), "labels": data.labels, "steps": a.steps, "skip": a.skip,
                     "batch_size": a.batch_size, "infer_batch_size": 64, "max_seq_length": a.max_seq_length,
                     "seed": a.seed, "learning_rate": a.learning_rate, "latency_examples": a.latency_examples},
        "machine": machine(peak),
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


def run_variant(name: str, vspec: dict, base: dict, work: Path, peak: dict, cfg: dict | None, n_classes: int,
                a: argparse.Namespace, encoder_for) -> dict:
    """Train + export, then infer, for one variant; its summary for the report."""
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
        flops = serving_flops(chunks, cfg, n_classes, cls_only)
        s["infer_mfu_b64"] = mfu(flops * inf["infer_examples_per_sec_b64"] / inf["n_test"], peak_gflops)
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


def summarize_train(r: dict, skip: int, cfg: dict | None, n_classes: int, peak_gflops: float | None) -> dict:
    """Steady-state throughput (steps after the first `skip`), padding, and MFU of the train phase."""
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
        flops = train_flops(steady_s, cfg, n_classes)
        out["train_tflops_per_sec"] = flops / secs / 1e12
        out["train_gflop_per_example"] = flops / examples / 1e9
        if peak_gflops:
            out["mfu"] = mfu(flops / secs, peak_gflops)
    return out


def fmt(x, digits=1):
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def print_table(results: dict, ref: dict | None, peak: dict, ab: dict | None = None) -> None:
    bf16 = f"{peak['bf16_gflops']:.0f} GFLOP/s" if peak["bf16_gflops"] else "not measured (no native bf16)"
    print(f"\nmatmul peak: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, bf16 {bf16}")
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


if __name__ == "__main__":
    sys.exit(main())
