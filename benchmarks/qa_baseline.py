"""Baselines for `python -m tfbert.train --task qa` on the same split of the built-in tweet questions.

    python benchmarks/qa_baseline.py [--seed 0] [--output JSON]

* gazetteer: the longest training answer of the asked question (entity type) that occurs in the tweet as whole
  words, case-insensitive, else no answer (tfbert.data.qa_builtin.gazetteer_baseline): what memorising the training
  entities achieves. Its dictionary is built from train + valid (the model sees valid only to stop and tune).
* always no answer: the share of no-answer questions, the floor any v2 model must beat.

Scored with the task's own SQuAD metrics (tfbert.metrics.qa) on the test split; prints a table and writes JSON
(default benchmarks/results/qa_baseline.json) with the CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import write_result  # noqa: E402

from tfbert.data.qa_builtin import gazetteer_baseline, load_builtin_dataset  # noqa: E402
from tfbert.metrics.qa import format_qa_report, qa_metrics  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(Path(__file__).parent / "results" / "qa_baseline.json"))
    args = p.parse_args(argv)
    t0 = time.time()
    data = load_builtin_dataset(seed=args.seed)
    golds = [q.answer_texts for q in data.test]
    results = {
        "gazetteer": qa_metrics(golds, gazetteer_baseline(data.train + data.valid, data.test), splits=True),
        "always_no_answer": qa_metrics(golds, [""] * len(golds), splits=True),
    }
    for name, metrics in results.items():
        print(f"{name}\n{format_qa_report(metrics)}\n")
    out = {"split": {"seed": args.seed, "train": len(data.train), "valid": len(data.valid), "test": len(data.test)},
           "results": results, "seconds": round(time.time() - t0, 1), "notes": data.notes}
    write_result(args.output, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
