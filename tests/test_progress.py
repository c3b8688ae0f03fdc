"""tfbert.progress: lines in logs, one redrawn bar on a terminal, nothing for small jobs or under quiet().
(That the CLIs send it to stderr and keep stdout clean is tested in test_serving_cli.py.)"""
import io
import itertools
import os
import re

from tfbert import progress
from tfbert.progress import Progress, Steps, duration, quiet


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _run(total, batch, stream, **kw):
    with Progress("predicting", total, steps=-(-total // batch), stream=stream, **kw) as p:
        for start in range(0, total, batch):
            p.update(min(batch, total - start))
    return stream.getvalue()


def test_log_lines_every_tenth_and_the_total_at_the_end():
    lines = _run(1000, 10, io.StringIO()).splitlines()  # 100 steps: a line per 10%, not per step
    assert len(lines) == 10
    counts = [int(re.match(r"predicting: ([\d,]+)/1,000 texts", line).group(1).replace(",", "")) for line in lines]
    assert counts == list(range(100, 1001, 100))
    assert "(100%)" in lines[-1] and " in " in lines[-1] and "texts/s" in lines[-1]
    assert " left" in lines[0] and "\r" not in "".join(lines)


def test_log_lines_also_every_30_seconds(monkeypatch):
    clock = itertools.count(0, 20)  # each update 20 s after the last
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines = _run(1000, 1, io.StringIO()).splitlines()  # 1000 steps of 20 s: 10% = 2000 s
    assert 300 < len(lines) < 520  # about one line per 30-40 s, not one per step
    assert lines[-1].startswith("predicting: 1,000/1,000 texts (100%)")


def test_terminal_gets_one_bar_redrawn_in_place(monkeypatch):
    clock = itertools.count()  # a second per update: every update redraws
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = _run(50, 10, Terminal())
    assert out.count("\n") == 1 and out.endswith("\n") and out.count("\r") == 5
    last = out.rstrip("\n").split("\r")[-1]
    assert last.startswith("predicting [" + "#" * 24 + "] 50/50 texts") and "texts/s" in last
    monkeypatch.setattr(progress.shutil, "get_terminal_size", lambda: os.terminal_size((60, 24)))
    narrow = _run(50, 10, Terminal()).rstrip("\n").split("\r")[-1].removesuffix("\x1b[K")
    assert len(narrow) < 60 and narrow.startswith("predicting [#") and narrow.endswith("s")  # whole, bar shorter


def test_small_jobs_and_quiet_show_nothing():
    assert _run(16, 8, io.StringIO()) == ""  # 2 steps: 3 is the least that shows
    assert _run(0, 8, io.StringIO()) == ""
    with quiet():
        assert _run(1000, 10, io.StringIO()) == "" and progress.is_quiet()
    assert not progress.is_quiet()
    assert _run(24, 8, io.StringIO()).count("\n") == 3


def test_an_error_ends_the_bar_line():
    out = Terminal()
    try:
        with Progress("predicting", 100, steps=10, stream=out) as p:
            p.update(10)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().endswith("\n")


def test_steps_number_themselves_and_sum_up():
    lines = []
    step = Steps(2, lines.append)
    step("building")
    step("saving")
    summary = step.summary()
    assert lines[0] == "[1/2] building" and lines[1].startswith("[2/2] saving (") and "so far)" in lines[1]
    assert re.fullmatch(r"\d+\.\ds: building \d+\.\ds, saving \d+\.\ds", summary)
    assert [duration(s) for s in (0.42, 42, 185, 3720)] == ["0.4s", "42s", "3m05s", "1h02m"]
