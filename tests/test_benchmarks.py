"""The benchmark scripts import: they share helpers (benchmarks/measure.py) that a rename could break silently,
since no test runs them in full."""
import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # how they run: python benchmarks/<script>.py


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports(name):
    module = importlib.import_module(name)
    assert module.__name__ == name
    if name != "measure" and (BENCHMARKS / f"{name}.py").read_text().count("__main__"):
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"


def test_results_record_the_cpu(tmp_path):
    measure = importlib.import_module("measure")
    path = measure.write_result(tmp_path / "r.json", {"x": 1})
    cpu = json.loads(path.read_text())["cpu"]
    assert cpu["cpus"] >= 1 and cpu["model"]
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    assert cpu["flags"] == sorted({f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags})
