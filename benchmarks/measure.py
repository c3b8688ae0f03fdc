"""How the benchmark measures a process: a child's wall time, peak RSS and the machine's other load; VmHWM inside
a process; percentiles; the machine description written into the report.

Imported by the parent and by every phase subprocess, so it imports nothing heavier than the standard library.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path


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


def mean_sd(values) -> dict:
    """{"mean", "std"} of a metric over seeds, to 4 places (std 0.0 for a single value)."""
    import statistics
    values = list(values)
    return {"mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def cpu_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (/proc/stat, all CPUs)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_child(cmd: list[str], log_path: Path, env: dict | None = None, cwd: str | None = None) -> dict:
    """Runs cmd with output to log_path. Returns exit code, wall seconds, peak RSS MB of the child (and its
    children), and `other_cpus`: the average number of CPUs kept busy by *other* processes meanwhile (machine
    busy time minus the child's CPU time, over the wall time): a measure of how contaminated the figures are."""
    t, busy = time.perf_counter(), cpu_busy_seconds()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    others = max(0.0, cpu_busy_seconds() - busy - usage.ru_utime - usage.ru_stime) / wall
    return {"code": proc.returncode, "wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "child_cpus": (usage.ru_utime + usage.ru_stime) / wall, "other_cpus": others}


def describe_run(run: dict) -> str:
    """The one-line summary printed after each child process."""
    return (f"{run['wall_seconds']:.0f}s, peak RSS {run['peak_rss_mb']:.0f} MB, "
            f"other processes used {run['other_cpus']:.2f} CPUs meanwhile")


def checkout() -> dict:
    """The commit of the tfbert checkout being measured (and whether its tree had changes), for the report."""
    root = Path(__file__).resolve().parents[1]
    git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True)  # noqa: E731
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None}
    return {"commit": head.stdout.strip(), "dirty": bool(git("status", "--porcelain", "--", "tfbert").stdout.strip())}


def machine(peak: dict) -> dict:
    """The report's description of the machine and software, with the measured matmul peak."""
    return {"cpu": cpu(), "python": platform.python_version(), "checkout": checkout(),
            "tensorflow": _version("tensorflow"), "tf_keras": _version("tf_keras"),
            "tensorflow_text": _version("tensorflow_text"),
            "matmul_peak_gflops": {"fp32": peak["fp32_gflops"], "bf16": peak["bf16_gflops"], "n": peak["n"]},
            "load_during_run": [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]}


# Environment variables that cap the instruction set the math libraries use: oneDNN (TensorFlow's matmuls, and
# some of PyTorch's), MKL (PyTorch's fp32 GEMMs) and PyTorch's own vectorised kernels. bench.py --max-isa AVX2
# sets all of them to reproduce an AVX2-only CPU on a newer one.
ISA_CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def cap_isa(isa: str) -> dict:
    """Caps every math library of this process's children at ``isa`` (e.g. AVX2); returns what was set."""
    values = {k: isa.lower() if k == "ATEN_CPU_CAPABILITY" else isa.upper() for k in ISA_CAP_ENV}  # torch: lower
    os.environ.update(values)
    return values


def cpu() -> dict:
    """The CPU a figure belongs to: its model, core count and the flags that decide tfbert's speed (tfbert's
    bf16 needs avx512_bf16 or amx_bf16; without them, fp32 on avx2/avx512f), and any instruction-set cap in force
    (then the figures are that ISA's, emulated on this CPU)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = sorted(set(re.findall(r"\b(avx512f|avx512_bf16|amx_bf16|avx2)\b", text)))
    caps = {k: os.environ[k] for k in ISA_CAP_ENV if os.environ.get(k)}
    return {"model": name.group(1).strip() if name else platform.processor() or platform.machine(),
            "flags": flags, "cpus": os.cpu_count(), **({"isa_cap": caps} if caps else {})}


def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """A benchmark's own arguments and, after "--", the extra flags it passes to `python -m tfbert.train`."""
    if "--" not in argv:
        return list(argv), []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def file_flags(files: dict) -> list[str]:
    """{"train": path, "test": path, ...} (None: not given) -> ["--train-file", path, ...]."""
    return [arg for split, path in files.items() if path for arg in (f"--{split}-file", str(path))]


def train_cli(argv: list[str], folder: Path, log_file: Path | None = None) -> dict:
    """One `python -m tfbert.train ARGV --output-dir FOLDER --verbose 2` from the repository root (its log in
    log_file, else FOLDER.log): the run's metrics.json summary plus "wall_seconds"."""
    import sys
    folder, log_file = Path(folder), Path(log_file or Path(folder).with_suffix(".log"))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tfbert.train", *argv, "--output-dir", str(folder), "--verbose", "2"]
    t = time.time()
    with open(log_file, "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    if done.returncode:
        raise SystemExit(f"run failed ({done.returncode}): {' '.join(cmd)}; see {log_file}")
    summary = json.loads(next(folder.glob("*/runs/*/metrics.json")).read_text())
    return {**summary, "wall_seconds": round(time.time() - t, 1)}


def write_result(path, result: dict) -> Path:
    """Writes a benchmark's result JSON (strict: no NaN) with the CPU it was measured on, the date and the commit
    (unless the result records its own), and says where."""
    import datetime
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"date": datetime.date.today().isoformat(), "checkout": checkout()}
    path.write_text(json.dumps({**stamp, **result, "cpu": cpu()}, indent=2, allow_nan=False, default=float) + "\n")
    print(f"wrote {path}")
    return path


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return None
