#!/usr/bin/env python
"""Temperature scaling on the built-in tweets: what `--calibrate` fits and what the calibrated export scores.

    python benchmarks/calibration.py [--max-train-examples 4000] [--seed 0] [--out benchmarks/results/calibration.json]
                                     [-- extra train flags]

One `python -m tfbert.train --task sentiment --calibrate --max-train-examples N` run: the temperature, validation
ECE and log-loss before (T = 1) and after, from its metrics.json, and the export's test figures (its probabilities
are the calibrated ones). The docs' calibration paragraph (docs/pages/tasks/classification.md) quotes this file.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measure import split_extra, train_cli, write_result  # noqa: E402


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-train-examples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "calibration.json"))
    a = ap.parse_args(argv)
    flags = ["--task", "sentiment", "--calibrate", "--max-train-examples", str(a.max_train_examples),
             "--seed", str(a.seed), *extra]
    folder = Path(tempfile.mkdtemp(prefix="tfbert-calibration-")) / "run"  # kept, with run.log beside it
    summary = train_cli(flags, folder)
    test = summary["test"]
    result = {"flags": flags, "train_rows": summary["train_rows"], "epochs_run": summary["epochs_run"],
              "calibration": summary["calibration"],
              "test": {k: test[k] for k in ("n", "accuracy", "macro_f1", "ece", "log_loss") if k in test},
              "fit_seconds": summary["fit_seconds"], "wall_seconds": summary["wall_seconds"]}
    c = result["calibration"]
    print(f"temperature {c['temperature']:.3f}; validation ECE {c['valid']['before']['ece']:.4f} -> "
          f"{c['valid']['after']['ece']:.4f}; test ECE {test.get('ece', float('nan')):.4f}, accuracy "
          f"{test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}")
    write_result(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
