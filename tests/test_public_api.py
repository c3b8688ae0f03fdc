"""`import tfbert` is the public API: every listed name resolves, lazily, to what its module defines, whatever was
imported before; submodules (tfbert.fit, tfbert.tune, tfbert.pretrain) resolve lazily too."""
import importlib
import importlib.util
import os
import subprocess
import sys

import tfbert


def test_no_public_name_is_also_a_submodule():
    # Importing tfbert.X binds the submodule to tfbert.X, which would shadow an API name X from then on.
    clashes = [name for name in tfbert._API if importlib.util.find_spec(f"tfbert.{name}") is not None]
    assert not clashes


def test_every_public_name_resolves_to_its_definition():
    for name, module in tfbert._API.items():
        assert getattr(tfbert, name) is getattr(tfbert, name) is getattr(importlib.import_module(module), name)


def test_submodules_resolve_lazily():
    code = ("import tfbert; assert callable(tfbert.fit.fit) and callable(tfbert.tune.tune) "
            "and callable(tfbert.pretrain.pretrain); from tfbert.fit import fit; assert tfbert.fit.fit is fit")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_import_tfbert_does_not_import_tensorflow():
    code = "import sys, tfbert; tfbert.RunConfig; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_tfbert_keeps_keras_3_out_of_the_process_unless_asked():
    """tf.keras is tf_keras once tfbert is imported first (TensorFlow then skips importing Keras 3); a user's own
    TF_USE_LEGACY_KERAS=0 still wins."""
    code = ("import sys, tfbert, tensorflow as tf, tf_keras; import tfbert.tasks.classification; "
            "print(tf.keras is tf_keras or tf.keras.__name__.startswith('tf_keras'), "
            "any(m.split('.')[0] == 'keras' for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["True", "False"], out
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "TF_USE_LEGACY_KERAS": "0"}).stdout
    assert out.split() == ["False", "True"], out
