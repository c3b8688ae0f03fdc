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


def test_the_docs_ci_timing_table_shows_every_row_of_the_json(tmp_path):
    """docs/pages/tests.md's table is what ci_timing.py writes from benchmarks/results/ci_timing.json."""
    ci_timing = importlib.import_module("ci_timing")
    rows = json.loads((BENCHMARKS / "results" / "ci_timing.json").read_text())["runs"]
    page = ci_timing.DOCS_PAGE.read_text()
    assert ci_timing.table(rows) in page + "\n"
    copy = tmp_path / "tests.md"
    copy.write_text(page)
    ci_timing.rewrite_table(copy, rows[:-1])  # the table alone is replaced; the text around it stays
    before, after = page.split(ci_timing.table(rows).rstrip("\n"))
    assert copy.read_text() == before + ci_timing.table(rows[:-1]).rstrip("\n") + after


def test_the_onnx_peer_takes_every_flag_smaller_models_passes_and_the_goal_picks_the_fastest_close_export(
        monkeypatch, tmp_path):
    """benchmarks/reference/onnx_peer.py parses what serving_ab.onnx_peer (smaller_models.py, serving_graph.py)
    starts it with (without onnxruntime); the goal compares the fastest export within 1.0 macro-F1 point of the
    teacher with the fastest peer."""
    import argparse
    import subprocess
    smaller = importlib.import_module("smaller_models")
    serving_ab = importlib.import_module("serving_ab")
    monkeypatch.syspath_prepend(str(BENCHMARKS / "reference"))
    peer = importlib.import_module("onnx_peer")
    passed = {}

    def run(cmd, check, cwd):
        passed.update(vars(peer.build_parser().parse_args(cmd[2:])))
        Path(passed["out"]).write_text(json.dumps({"models": {}}))

    monkeypatch.setattr(subprocess, "run", run)
    a = argparse.Namespace(peer_python="python", peer_model_dir="ckpt", rounds=3, batches=4, singles=8)
    serving_ab.onnx_peer(a, ["a text", "another\ntext"], tmp_path / "work")
    assert passed["model_dir"] == "ckpt" and passed["rounds"] == 3 and passed["batches"] == 4
    assert (tmp_path / "work" / "test_texts.txt").read_text().split("\n") == ["a text", "another text"]
    rows = {"teacher": {"macro_f1_points_vs_teacher": 0.0, "examples_per_s": 100.0, "p50_ms": 10.0},
            "fast-but-worse": {"macro_f1_points_vs_teacher": -1.5, "examples_per_s": 900.0, "p50_ms": 2.0},
            "student": {"macro_f1_points_vs_teacher": -0.8, "examples_per_s": 300.0, "p50_ms": 5.0}}
    peers = {"int8": {"examples_per_s": 150.0, "p50_ms": 4.0}, "fp32": {"examples_per_s": 75.0, "p50_ms": 8.0}}
    assert smaller.goal(rows, peers) == {"export": "student", "peer": "int8", "examples_per_s_ratio": 2.0,
                                         "p50_ratio": 1.25}


def test_interleaved_serving_times_every_single_call_of_every_round():
    """serving_ab.interleaved hands back one time per batch-1 call and round (the p50/p99), round totals beside."""
    serving_ab = importlib.import_module("serving_ab")

    class Out:
        def numpy(self):
            return 0

    calls = []
    serves = {"a": lambda x: calls.append(("a", x)) or {"label_id": Out()},
              "b": lambda x: calls.append(("b", x)) or {"label_id": Out()}}
    single_ms = {}
    b64, b1 = serving_ab.interleaved(serves, ["B1", "B2"], ["s1", "s2", "s3"], 2, single_ms)
    assert {k: len(v) for k, v in single_ms.items()} == {"a": 6, "b": 6}
    assert all(t >= 0 for t in single_ms["a"]) and len(b64["a"]) == len(b1["b"]) == 2
    assert len(calls) == 2 * 5 + 2 * 2 * 5  # warm-up on every shape, then 2 rounds of both serves


def test_the_multitask_table_pairs_each_joint_head_with_its_single_model_by_seed():
    markdown = importlib.import_module("multitask").markdown
    runs = {"sentiment/0": {"sentiment": {"macro_f1": 0.70}}, "sentiment/1": {"sentiment": {"macro_f1": 0.60}},
            "ner/0": {"ner": {"entity_f1": 0.50}},
            "joint-default/0": {"sentiment": {"macro_f1": 0.72}, "ner": {"entity_f1": 0.40}}}
    lines = markdown(runs).splitlines()
    assert lines[2] == "| single | sentiment | macro_f1 | 2 | 0.650 +- 0.071 | 0.700, 0.600 | - |"
    assert "| joint-default | sentiment | macro_f1 | 1 | 0.720 +- 0.000 | 0.720 | +0.020 (1 seeds) |" in lines
    assert "| joint-default | ner | entity_f1 | 1 | 0.400 +- 0.000 | 0.400 | -0.100 (1 seeds) |" in lines
    assert not any("multilabel" in line for line in lines)  # no run of it: no row
