"""Progress of the waits outside the training loop: running a model over a file (predict, evaluate), tokenizing,
converting a checkpoint.

Always on stderr, never stdout: predict prints its answers there as JSON lines, which must stay parseable.
On a terminal a one-line bar is redrawn in place with the rate and the time left; in logs and pipes (stderr not a
terminal) a line every 10% or 30 s, whichever comes first. Jobs of fewer than MIN_STEPS steps (model calls,
tokenizer chunks) show nothing: they end before a bar would help. `quiet()` (the CLIs' --quiet) turns it off.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time

__all__ = ["Progress", "Steps", "quiet", "is_quiet", "duration", "MIN_STEPS", "LOG_LINES", "LOG_EVERY_SECONDS"]

MIN_STEPS = 3
LOG_LINES = 10  # a line at each tenth of the work
LOG_EVERY_SECONDS = 30.0
REDRAW_SECONDS = 0.2  # a terminal bar redrawn faster only costs time
BAR_WIDTH = 24

_quiet = False


@contextlib.contextmanager
def quiet(on: bool = True):
    """Within the block, Progress shows nothing (`with tfbert.progress.quiet(): model.predict(texts)`)."""
    global _quiet
    before, _quiet = _quiet, bool(on)
    try:
        yield
    finally:
        _quiet = before


def is_quiet() -> bool:
    return _quiet


def duration(seconds: float) -> str:
    """'0.4s', '42s', '3m05s', '1h02m': short, and precise where it matters."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """`total` units of work (texts, words) done in `steps` calls, shown as `label`. A context manager: call
    `update(n)` after each step; leaving the block ends the bar's line (also on an error, so the message that
    follows starts on a line of its own)."""

    def __init__(self, label: str, total: int, *, steps: int, unit: str = "texts", stream=None):
        self.label, self.total, self.unit = label, int(total), unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not _quiet and self.total > 0 and steps >= MIN_STEPS
        self.tty = self.enabled and _isatty(self.stream)
        self.done, self.drawn = 0, False
        self.start = self.last = time.monotonic()
        self.marks = 1  # log lines: the next is due at marks / LOG_LINES of the total

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.done >= self.total
        if self.tty:
            if finished or not self.drawn or now - self.last >= REDRAW_SECONDS:
                self._write("\r" + self._bar(now) + "\x1b[K")  # \x1b[K: clear what a longer line left behind
                self.last = now
        elif finished or self.done >= self._mark() or now - self.last >= LOG_EVERY_SECONDS:
            self._write(self._line(now) + "\n")
            self.last = now
            while self._mark() <= self.done:
                self.marks += 1

    def _mark(self) -> int:
        return -(-self.total * self.marks // LOG_LINES)  # integers: 0.1 * 3 would be 0.30000000000000004

    def close(self) -> None:
        if self.tty and self.drawn:
            self._write("\n")
        self.drawn = False

    def _write(self, s: str) -> None:
        self.stream.write(s)
        self.stream.flush()
        self.drawn = True

    def _numbers(self, now: float) -> tuple[str, str]:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.done >= self.total:
            when = f"in {duration(elapsed)}"
        else:
            when = f"{duration((self.total - self.done) / rate)} left" if rate > 0 else "time left unknown"
        return f"{rate:,.1f} {self.unit}/s", when

    def _line(self, now: float) -> str:
        rate, when = self._numbers(now)
        return (f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%), "
                f"{rate}, {when}")

    def _bar(self, now: float) -> str:
        rate, when = self._numbers(now)
        numbers = f"{self.done:,}/{self.total:,} {self.unit}, {rate}, {when}"
        # A line that wraps cannot be redrawn in place: a narrow terminal gets a shorter bar, then none.
        room = shutil.get_terminal_size().columns - 1 - len(self.label) - len(numbers) - 4
        width = min(BAR_WIDTH, room)
        if width < 5:
            return f"{self.label} {numbers}"[: max(20, shutil.get_terminal_size().columns - 1)]
        full = min(width, width * self.done // self.total)
        return f"{self.label} [{'#' * full}{'.' * (width - full)}] {numbers}"


class Steps:
    """The numbered steps of a long job, through `log` (so a caller's silent log silences them too):
    `step("saving the encoder")` logs "[4/5] saving the encoder" with the time so far; `summary()` how long each
    one took."""

    def __init__(self, total: int, log=print):
        self.total, self.log = total, log
        self.start = time.monotonic()
        self.times: list[tuple[str, float]] = []
        self._current: tuple[str, float] | None = None

    def __call__(self, name: str) -> None:
        now = self._finish_current()
        self._current = (name, now)
        n = len(self.times) + 1
        self.log(f"[{n}/{self.total}] {name}" + (f" ({duration(now - self.start)} so far)" if n > 1 else ""))

    def summary(self) -> str:
        """'52s: building the encoder 2.1s, saving the encoder 30s, ...'."""
        now = self._finish_current()
        return f"{duration(now - self.start)}: " + ", ".join(f"{name} {duration(t)}" for name, t in self.times)

    def _finish_current(self) -> float:
        now = time.monotonic()
        if self._current is not None:
            self.times.append((self._current[0], now - self._current[1]))
            self._current = None
        return now
