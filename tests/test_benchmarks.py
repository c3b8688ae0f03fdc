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


def test_the_peer_script_is_in_the_repository_and_takes_every_flag_bench_passes(monkeypatch, tmp_path):
    """benchmarks/reference/hf_finetune.py (the Hugging Face peer) must accept what reference.run_reference passes;
    its parser imports no torch, so this runs in tfbert's venv."""
    reference = importlib.import_module("reference")
    assert reference.DEFAULT_SCRIPT == BENCHMARKS / "reference" / "hf_finetune.py" and reference.DEFAULT_SCRIPT.is_file()
    monkeypatch.syspath_prepend(str(BENCHMARKS / "reference"))
    peer = importlib.import_module("hf_finetune")
    passed = {}

    def run_child(cmd, log, cwd=None):  # what run_reference would start: parse its flags instead
        passed.update(vars(peer.build_parser().parse_args(cmd[2:])))
        log.write_text("stopped by the test")
        return {"code": 1}

    monkeypatch.setattr(reference, "run_child", run_child)
    args = type("A", (), {"steps": 7, "batch_size": 16, "max_seq_length": 64, "seed": 3, "learning_rate": 2e-5})()
    with pytest.raises(SystemExit, match="reference failed"):
        reference.run_reference("python", str(reference.DEFAULT_SCRIPT), "ckpt", tmp_path / "a.csv",
                                tmp_path / "b.csv", tmp_path, args, str(tmp_path / "copy.json"))
    assert passed["mode"] == "bench" and passed["bench_steps"] == 7 and passed["batch_size"] == 16
    assert passed["max_length"] == 64 and passed["lr"] == 2e-5 and passed["model_dir"] == "ckpt"


def test_ci_timing_reads_pytest_summary_line():
    summary = importlib.import_module("ci_timing").pytest_summary
    assert summary("x\n= 3 failed, 520 passed, 2 warnings in 1488.12s (0:24:48) =\n") == {
        "counts": {"failed": 3, "passed": 520, "warnings": 2}, "seconds": 1488.12}
    assert summary("no summary here") == {}
