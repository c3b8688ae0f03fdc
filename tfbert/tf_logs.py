"""TensorFlow's C++ start-up lines, kept out of tfbert's output.

Loading TensorFlow's shared libraries prints lines through absl before any logging is configured (oneDNN notes,
"Could not find cuda drivers", CPU feature hints), so TF_CPP_MIN_LOG_LEVEL does not reach them. While one of the
modules below is first executed, file descriptor 2 goes to a temporary file; afterwards everything in it except
absl's info and warning lines is written back to stderr, so Python warnings and real errors still show.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

MODULES = frozenset({"tensorflow", "tensorflow_text", "tensorflow_hub", "tf_keras"})
NOISE = re.compile(r"^([IW]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] |WARNING: All log messages before absl::InitializeLog"
                   r"|To enable the following instructions: )")


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                        if not NOISE.match(line)]
                if kept:
                    sys.stderr.write("".join(kept))


class _QuietFinder(importlib.abc.MetaPathFinder):
    busy = False

    def find_spec(self, name, path=None, target=None):
        if name not in MODULES or self.busy:
            return None
        self.busy = True  # find_spec below walks sys.meta_path, this finder included
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet the first import of TensorFlow and its companions (a no-op once they are imported)."""
    if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
