"""What the command-line tools share: the error wrapper (one `error: ...` line, exit code 2), notes and common
flags (--batch-size, --debug, --quiet)."""
from __future__ import annotations

import argparse
import errno
import os
import sys

from tfbert.progress import quiet


def run_cli(parser: argparse.ArgumentParser, run, argv=None, errors=(ValueError, OSError)) -> int:
    """Parse `argv` and call `run(args)`; the exceptions in `errors`, a full disk and Ctrl-C print one line and
    return 2 (Ctrl-C: 130).

    `--debug` re-raises instead, to show the traceback. Commands whose failures could also come from bugs
    deep inside TensorFlow pass their own narrower `errors`, so those keep their traceback.
    """
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        with quiet(getattr(args, "quiet", False)):
            return run(args) or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted (Ctrl-C); nothing half-written was published", file=sys.stderr)
        return 130
    except Exception as e:
        if debug or not (isinstance(e, errors) or disk_full(e)):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2


def disk_full(e: BaseException) -> bool:
    """ENOSPC, raised by Python (OSError) or by a TensorFlow op writing a checkpoint or SavedModel (an OpError whose
    message says so: ResourceExhaustedError reads like out-of-memory)."""
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e)


def one_line(e: BaseException) -> str:
    if disk_full(e):
        where = getattr(e, "filename", None) or next(
            (w.strip("'\"") for w in str(e).split() if w.strip("'\"").startswith(os.sep)), None)
        return "no space left on device" + (f" writing {where}" if where else "") + "; free space and run again"
    return " ".join(str(e).split("\n")) or type(e).__name__


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                        help="texts per model call (default: %(default)s)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors instead of a one-line message, and "
                             "TensorFlow's C++ log lines (default: off)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress on stderr (default: shown when the model runs more than 2 batches: a bar "
                             "on a terminal, a line every 10%% or 30 s in logs and pipes)")


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v
