"""The Hugging Face reference: finding its script and Python, running it on the benchmark's own splits, and the
ratios tfbert / reference-best written into the report.

The reference is benchmarks/reference/hf_finetune.py (transformers + PyTorch) run with `--mode bench` in its own
venv (benchmarks/reference/requirements.txt):
  script  --reference-script, else $TFBERT_REFERENCE_SCRIPT, else benchmarks/reference/hf_finetune.py
  python  --reference-python, else $TFBERT_REFERENCE_PYTHON (a venv with torch and transformers; the script's
          docstring says how to make one). There is no default: without either, the reference is skipped.
--reference-json reuses an earlier result instead; --no-reference skips it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from measure import describe_run, run_child

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCRIPT = REPO / "benchmarks" / "reference" / "hf_finetune.py"
SCRIPT_ENV = "TFBERT_REFERENCE_SCRIPT"
PYTHON_ENV = "TFBERT_REFERENCE_PYTHON"


def locate(script: str | None, python: str | None) -> tuple[str, str] | None:
    """(python, script) from the flags, else the environment, else the default script; None (after saying how to
    enable it) when no Python is configured. A configured one that does not exist is an error, raised now rather
    than after the first variant has run."""
    python = python or os.environ.get(PYTHON_ENV)
    script = script or os.environ.get(SCRIPT_ENV) or str(DEFAULT_SCRIPT)
    if not python:
        print(f"  [reference] skipped: pass --reference-python PATH or set {PYTHON_ENV} (a venv with torch + "
              "transformers) to run it, or --reference-json FILE to reuse a result")
        return None
    found = shutil.which(python)
    if not found:
        raise SystemExit(f"reference Python {python!r} (--reference-python / {PYTHON_ENV}) is not an executable")
    if not Path(script).is_file():
        raise SystemExit(f"reference script {script} not found: pass --reference-script PATH or set {SCRIPT_ENV}")
    return found, str(Path(script).resolve())


def run_reference(python: str, script: str, checkpoint: str, train_csv: Path, test_csv: Path, work: Path, a,
                  out_copy: str) -> tuple[dict, dict]:
    """The peer script with --mode bench on the same splits and settings; its result is also copied to out_copy."""
    from tfbert.encoders.registry import cpu_has_bf16

    out = work / "hf_reference.json"
    cmd = [python, script, "--model-dir", checkpoint, "--train-file", str(train_csv),
           "--test-file", str(test_csv), "--mode", "bench", "--bench-steps", str(a.steps),
           "--batch-size", str(a.batch_size), "--max-length", str(a.max_seq_length), "--seed", str(a.seed),
           "--lr", str(a.learning_rate), "--out", str(out),
           # the script's own "auto" reads /proc/cpuinfo only; an ISA cap (bench.py --max-isa) rules bf16 out too
           "--precisions", "auto" if cpu_has_bf16() else "fp32"]
    print(f"  [reference] {Path(script).name} --mode bench ...", end=" ", flush=True)
    run = run_child(cmd, work / "reference.log", cwd=str(Path(script).parent))
    if run["code"] != 0:
        raise SystemExit(f"reference failed ({run['code']}); log:\n{(work / 'reference.log').read_text()[-4000:]}")
    print(describe_run(run), flush=True)
    reference = json.loads(out.read_text())
    Path(out_copy).parent.mkdir(parents=True, exist_ok=True)
    Path(out_copy).write_text(json.dumps(reference, indent=2))
    return reference, {"source": out_copy, **{k: run[k] for k in ("wall_seconds", "peak_rss_mb", "other_cpus")},
                       "command": cmd}


def compare(results: dict, reference: dict | None, ref_run: dict | None) -> dict | None:
    """Reference figures, and ratios tfbert / reference-best written into each variant's summary."""
    if not reference:
        return None
    pick = lambda fmt, key: {p: reference[fmt.format(p)][key] for p in ("fp32", "bf16") if fmt.format(p) in reference}
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
