#!/usr/bin/env python
"""How long CI takes: `bash .ci/run` (venv, packages, then the README's test command) in a fresh clone, timed.

    python3 benchmarks/ci_timing.py [--repo .] [--ref HEAD] [--work /tmp/tfbert-ci] [--out JSON]

    python3 benchmarks/ci_timing.py --table-only       # only rewrite the docs table from the JSON

Clones --repo at --ref into --work (removed first), runs `CI=true bash .ci/run` there with its log in
WORK.log, and appends one row to --out (default benchmarks/results/ci_timing.json): commit, exit code, whole
wall time, pytest's own count and time from its summary line, and how many CPUs other processes kept busy
meanwhile (a suite timed beside a benchmark is slower). Then it rewrites the table of docs/pages/tests.md from
all the rows (tests/test_benchmarks.py checks that the page shows the JSON). Standard library only: it runs
before any venv exists.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import cpu, run_child, write_result  # noqa: E402

# pytest -q's last line, e.g. "526 passed, 2 warnings in 1488.12s (0:24:48)"
SUMMARY = re.compile(r"^=*\s*(?P<counts>\d+ \w+(?:, \d+ \w+)*) in (?P<seconds>[\d.]+)s", re.M)


def pytest_summary(log: str) -> dict:
    """{"counts": {"passed": n, ...}, "seconds": s} of the last pytest summary line in a log ({} if none)."""
    found = list(SUMMARY.finditer(log))
    if not found:
        return {}
    last = found[-1]
    counts = {word: int(n) for n, word in (part.split() for part in last["counts"].split(", "))}
    return {"counts": counts, "seconds": float(last["seconds"])}


DOCS_PAGE = HERE.parent / "docs" / "pages" / "tests.md"
TABLE_HEADER = ("| commit | tests | time of tests | whole `.ci/run` | CPU | other processes (CPUs busy) |\n"
                "| --- | --- | --- | --- | --- | --- |\n")


def table(rows: list[dict]) -> str:
    """The docs' markdown table of the timing rows, oldest first."""
    def line(r):
        counts = ", ".join(f"{n} {word}" for word, n in sorted(r["pytest"].get("counts", {}).items()))
        seconds = r["pytest"].get("seconds")
        tests = "-" if seconds is None else f"{seconds / 60:.1f} min"
        cpu = f"{r['cpu']['model']} ({', '.join(r['cpu']['flags'])})"
        return (f"| {r['commit'][:7]} | {counts or 'no summary (exit ' + str(r['exit_code']) + ')'} | {tests} | "
                f"{r['ci_minutes']:.1f} min | {cpu} | {r['other_cpus']:.2f} |\n")
    return TABLE_HEADER + "".join(line(r) for r in rows)


def rewrite_table(page: Path, rows: list[dict]) -> None:
    """Replace the table that starts with TABLE_HEADER in `page` (ValueError if it has none)."""
    text = page.read_text()
    start = text.find(TABLE_HEADER)
    if start < 0:
        raise ValueError(f"{page}: no CI timing table (a line starting {TABLE_HEADER.splitlines()[0]!r})")
    end = text.find("\n\n", start)
    page.write_text(text[:start] + table(rows).rstrip("\n") + text[end if end >= 0 else len(text):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=str(HERE.parent))
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--work", default="/tmp/tfbert-ci")
    ap.add_argument("--out", default=str(HERE / "results" / "ci_timing.json"))
    ap.add_argument("--page", default=str(DOCS_PAGE), help="the docs page whose table is rewritten")
    ap.add_argument("--table-only", action="store_true", help="rewrite --page's table from --out; run nothing")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.table_only:
        rewrite_table(Path(a.page), json.loads(out.read_text())["runs"])
        return 0
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", a.repo, str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", a.ref], check=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    log = work.with_suffix(".log")
    print(f"bash .ci/run in {work} ({commit[:7]}), log {log} ...", flush=True)
    run = run_child(["bash", ".ci/run"], log, env={**os.environ, "CI": "true"}, cwd=str(work))
    row = {"commit": commit, "exit_code": run["code"], "ci_minutes": round(run["wall_seconds"] / 60, 1),
           "other_cpus": round(run["other_cpus"], 2), "pytest": pytest_summary(log.read_text(errors="replace")),
           "cpu": cpu()}
    print(json.dumps(row))
    rows = [*(json.loads(out.read_text())["runs"] if out.is_file() else []), row]
    write_result(out, {"runs": rows})
    rewrite_table(Path(a.page), rows)
    return run["code"]


if __name__ == "__main__":
    sys.exit(main())
