import time
from pathlib import Path

import pytest

from tfbert.encoders.registry import REMOTE, EncoderError, ensure_converted, registered_names, resolve_encoder


def test_registry_lists_default_and_public_berts():
    names = registered_names()
    assert "minilm-l6" in names and "bert-base-uncased" in names
    assert REMOTE["small-bert-l4-h512"][1].endswith("bert_en_uncased_L-4_H-512_A-8/2")
    assert REMOTE["small-bert-l4-h512"][0].endswith("bert_en_uncased_preprocess/3")
    assert len([n for n in names if n.startswith("small-bert")]) == 24


def test_unknown_name_lists_registered():
    with pytest.raises(EncoderError, match="minilm-l6"):
        resolve_encoder("no-such-encoder")


def test_unreachable_url_fails_fast_with_pointer_to_default():
    t = time.time()
    with pytest.raises(EncoderError, match=r"cannot reach https://unreachable\.invalid/enc.*--encoder minilm-l6"):
        resolve_encoder("https://unreachable.invalid/enc", preprocess="https://unreachable.invalid/pre")
    assert time.time() - t < 15


def test_url_without_preprocess_is_explained():
    with pytest.raises(EncoderError, match="--preprocess"):
        resolve_encoder("https://example.invalid/encoder")


def test_local_pair_directory_resolves(tiny_pair):
    h = resolve_encoder(str(tiny_pair))
    assert Path(h.encoder) == tiny_pair / "encoder" and Path(h.preprocess) == tiny_pair / "preprocess"


def test_cache_reuses_a_converted_pair(tmp_path, monkeypatch, checkpoint_dir):
    from conftest import write_hf_checkpoint
    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path / "cache"))
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt")
    logs = []
    first = ensure_converted(src, "toy", log=logs.append)
    stamp = (first / "encoder" / "saved_model.pb").stat().st_mtime_ns
    again = ensure_converted(src, "toy", log=logs.append)
    assert again == first and first.parent == tmp_path / "cache"
    assert (first / "encoder" / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sum("first use" in line for line in logs) == 1
    # A Hugging Face checkpoint directory given as --encoder is converted into the cache too.
    h = resolve_encoder(str(src), log=logs.append)
    assert Path(h.encoder).parent.parent == tmp_path / "cache"
    # The bf16 build of the same checkpoint is a separate cache entry; the fp32 one is kept.
    from tfbert.encoders.convert import read_metadata
    h16 = resolve_encoder(str(src), log=logs.append, precision="bf16")
    assert h16.precision == "bf16" and Path(h16.encoder).parent != Path(h.encoder).parent
    assert read_metadata(Path(h16.encoder).parent)["precision"] == "bf16"
    assert read_metadata(Path(h.encoder).parent)["precision"] == "fp32"


def test_precision_auto_picks_bf16_only_where_it_is_native_and_buildable(monkeypatch, tiny_pair, checkpoint_dir):
    from tfbert.encoders import registry
    monkeypatch.setattr(registry, "cpu_has_bf16", lambda: True)
    assert registry.resolve_precision("auto", "minilm-l6") == "bf16"
    assert registry.resolve_precision("auto", str(checkpoint_dir)) == "bf16"  # an HF checkpoint: tfbert builds it
    assert registry.resolve_precision("auto", str(tiny_pair)) == "fp32"  # a saved pair keeps its precision
    assert registry.resolve_precision("auto", REMOTE["bert-base-uncased"][1]) == "fp32"
    assert registry.resolve_precision("fp32", "minilm-l6") == "fp32"
    monkeypatch.setattr(registry, "cpu_has_bf16", lambda: False)
    assert registry.resolve_precision("auto", "minilm-l6") == "fp32"
    with pytest.raises(EncoderError, match="--precision bf16 needs an encoder that tfbert converts"):
        registry.resolve_precision("bf16", str(tiny_pair))
