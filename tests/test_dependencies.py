"""Dependencies whose private or fast-changing API tfbert relies on are bounded to the tested range, and the one
private hook it overrides (tensorflow_hub.KerasLayer._add_existing_weight) is still defined and called."""
import configparser
import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
TESTED_HUB = "0.16.1"
HOOK = (f"tensorflow_hub.KerasLayer._add_existing_weight is no longer {{}}: EncoderLayer's freezing relies on it "
        f"(tested with tensorflow-hub {TESTED_HUB}; installed: {{}})")
# Private API (tensorflow-hub: the hook above; keras-tuner: the BaseTuner and oracle hooks tfbert.tune overrides) or
# an API that changes between minor releases (TensorFlow, Keras 2, TF Text ops in exported graphs): each must have an
# upper bound in setup.cfg.
BOUNDED = ("tensorflow", "tf-keras", "tensorflow-text", "tensorflow-hub", "keras-tuner")


def _install_requires() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG, encoding="utf-8")
    lines = [line.strip() for line in cfg["options"]["install_requires"].splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def test_installed_versions_are_inside_setup_cfg_bounds():
    outside = []
    for req in _install_requires():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            outside.append(f"{req}: not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            outside.append(f"{req}: installed {installed}")
    assert not outside, ("setup.cfg's install_requires no longer covers the tested environment (move the bound "
                         "only after testing the new version): " + "; ".join(outside))


def test_private_or_fast_changing_dependencies_have_upper_bounds():
    reqs = {canonicalize_name(r.name): r for r in _install_requires()}
    for name in BOUNDED:
        req = reqs.get(canonicalize_name(name))
        assert req is not None, f"{name} is missing from setup.cfg's install_requires"
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
            f"setup.cfg: {req} has no upper bound; tfbert relies on its private or fast-changing API")
    hub = reqs[canonicalize_name("tensorflow-hub")]
    assert hub.specifier.contains(TESTED_HUB), f"setup.cfg: {hub} excludes the tested tensorflow-hub {TESTED_HUB}"


def test_encoder_layer_freezing_hook(tiny_pair, monkeypatch):
    import tensorflow_hub as hub

    from tfbert.encoders.layer import EncoderLayer

    installed = importlib.metadata.version("tensorflow-hub")
    original = getattr(hub.KerasLayer, "_add_existing_weight", None)
    assert callable(original), HOOK.format("defined", installed)
    assert "_add_existing_weight" in EncoderLayer.__dict__, "EncoderLayer no longer overrides _add_existing_weight"

    calls = []

    def counting(self, weight, trainable=None):
        calls.append((weight.name, trainable))
        return original(self, weight, trainable=trainable)

    monkeypatch.setattr(hub.KerasLayer, "_add_existing_weight", counting)
    layer = EncoderLayer(str(tiny_pair / "encoder"), frozen=("word_embeddings",), trainable=True)
    assert calls, HOOK.format("called", installed)
    assert {name for name, _ in calls} == {v.name for v in layer.weights}, HOOK.format(
        "called for every SavedModel variable", installed)

    frozen = [w.name for w in layer.non_trainable_weights if "word_embeddings" in w.name]
    assert frozen, HOOK.format("called with the frozen flag applied (word embeddings are trainable)", installed)
    assert not [w.name for w in layer.trainable_weights if "word_embeddings" in w.name]
    trainable = [w.name for w in layer.trainable_weights]
    assert any("position_embedding" in n for n in trainable) and len(trainable) > 10, trainable

    # Without `frozen`, the same variables train: the freezing above is EncoderLayer's doing, not the SavedModel's.
    plain = EncoderLayer(str(tiny_pair / "encoder"), trainable=True)
    assert [w.name for w in plain.trainable_weights if "word_embeddings" in w.name] == frozen

