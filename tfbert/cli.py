"""The shared command-line wrapper: expected failures become one `error: ...` line and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys


def run_cli(parser: argparse.ArgumentParser, run, argv=None, errors=(ValueError, OSError)) -> int:
    """Parse `argv` and call `run(args)`; the exceptions in `errors` print one line and return 2.

    `--debug` re-raises instead, to show the traceback. Commands whose failures could also come from bugs
    deep inside TensorFlow pass their own narrower `errors`, so those keep their traceback.
    """
    args = parser.parse_args(argv)
    # Quiets TensorFlow's C++ logging where it honours the variable; the user's setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return run(args) or 0
    except errors as e:
        if args.debug:
            raise
        msg = " ".join(str(e).split("\n")) or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
