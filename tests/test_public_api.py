"""`import tfbert` is the public API: every listed name resolves, lazily, to what the modules define, on every
access (tfbert.fit, .tune and .pretrain share their names with the submodules that define them)."""
import importlib
import subprocess
import sys

import tfbert


def test_every_public_name_resolves_to_its_definition():
    for name, module in tfbert._API.items():
        first, second = getattr(tfbert, name), getattr(tfbert, name)
        assert first is second is getattr(importlib.import_module(module), name), name


def test_functions_named_like_their_modules_stay_functions():
    for name in ("fit", "tune", "pretrain"):
        assert callable(getattr(tfbert, name)) and callable(getattr(tfbert, name)), name


def test_import_tfbert_does_not_import_tensorflow():
    code = "import sys, tfbert; tfbert.RunConfig; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
