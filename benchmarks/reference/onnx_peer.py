#!/usr/bin/env python
"""The ONNX Runtime serving peer: the same checkpoint exported from Hugging Face + PyTorch to ONNX, fp32 and int8.

Set-up (the Hugging Face peer's venv, plus onnxruntime and onnx):
    python3 -m venv VENV && VENV/bin/pip install -r benchmarks/reference/requirements.txt
Use (benchmarks/smaller_models.py runs it with --peer-python VENV/bin/python):
    VENV/bin/python benchmarks/reference/onnx_peer.py --model-dir DIR --texts-file texts.txt --out result.json

What a CPU user who leaves TensorFlow would serve: AutoModelForSequenceClassification over the checkpoint (--labels
outputs; the head's weights do not change the speed), `torch.onnx.export` (opset 17, dynamic batch and length),
and `onnxruntime.quantization.quantize_dynamic` (QInt8 weights) for int8; sessions with all graph optimisations
and intra-op threads = cores. Every request is raw strings through the Hugging Face fast tokenizer (truncation at
--max-length, padding to the request's longest) and the session, timed end to end as tfbert's exports are, and
the session alone (model time). Batches of 64 texts in file order, with rounds alternating the models after a
warm-up, give examples/s; single texts give p50/p99 latency per call. The texts file has one text per line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from hf_finetune import cpu_facts


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="a Hugging Face layout BERT checkpoint")
    ap.add_argument("--texts-file", required=True, help="UTF-8, one text per line")
    ap.add_argument("--labels", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batches", type=int, default=16, help="batch-64 requests per round")
    ap.add_argument("--singles", type=int, default=64, help="single-text requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default="/tmp/tfbert-onnx-peer", help="where the .onnx files are written")
    ap.add_argument("--out", default="onnx_peer.json")
    return ap


def export(model_dir: str, labels: int, work: Path) -> dict[str, Path]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    work.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work / "model.onnx", work / "model-int8.onnx"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=labels).eval()
    sample = AutoTokenizer.from_pretrained(model_dir)(["an example", "a second example text"], padding=True,
                                                      return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with torch.no_grad():
        torch.onnx.export(model, tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return {"onnxruntime fp32": fp32, "onnxruntime int8": int8}


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer

    texts = [t for t in Path(a.texts_file).read_text(encoding="utf-8").split("\n") if t]
    tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
    files = export(a.model_dir, a.labels, Path(a.work))
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = {k: ort.InferenceSession(str(f), options, providers=["CPUExecutionProvider"]) for k, f in files.items()}

    def encode(batch):
        enc = tokenizer(batch, truncation=True, max_length=a.max_length, padding=True, return_tensors="np")
        return {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}

    b64 = [texts[i:i + 64] for i in range(0, 64 * a.batches, 64)]
    b1 = [[t] for t in texts[:a.singles]]
    encoded = [encode(b) for b in b64]
    for s in sessions.values():  # warm-up on every shape
        for batch in b64 + b1:
            s.run(None, encode(batch))
    end_to_end, model_only, latency = ({k: [] for k in sessions} for _ in range(3))
    for r in range(a.rounds):
        for k in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
            s = sessions[k]
            t = time.perf_counter()
            for batch in b64:
                s.run(None, encode(batch))
            end_to_end[k].append(time.perf_counter() - t)
            t = time.perf_counter()
            for x in encoded:
                s.run(None, x)
            model_only[k].append(time.perf_counter() - t)
            for batch in b1:
                t = time.perf_counter()
                s.run(None, encode(batch))
                latency[k].append(1000 * (time.perf_counter() - t))
    n = 64 * len(b64)
    rows = {}
    for k in sessions:
        ms = sorted(latency[k])
        rows[k] = {"examples_per_s": round(n / statistics.median(end_to_end[k]), 1),
                   "examples_per_s_model_only": round(n / statistics.median(model_only[k]), 1),
                   "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                   "size_mb": round(files[k].stat().st_size / 2**20, 1)}
        print(f"{k}: {rows[k]['examples_per_s']:.0f} examples/s ({rows[k]['examples_per_s_model_only']:.0f} model "
              f"only), p50 {rows[k]['p50_ms']:.2f} ms, p99 {rows[k]['p99_ms']:.2f} ms, {rows[k]['size_mb']} MB")
    import onnxruntime
    import torch
    import transformers
    result = {"peer": "onnxruntime", "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                                                   "transformers": transformers.__version__},
              "model_dir": a.model_dir, "texts": len(texts), "rounds": a.rounds, "threads": os.cpu_count(),
              **cpu_facts(), "models": rows}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
