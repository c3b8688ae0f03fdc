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


@pytest.mark.parametrize("cap, native", [("AVX2", False), ("avx512_core", False), ("AVX2_VNNI", False),
                                         ("AVX512_CORE_BF16", True), ("AVX512_CORE_AMX", True), ("ALL", True)])
def test_onednn_isa_cap_below_bf16_means_no_native_bf16(monkeypatch, tmp_path, cap, native):
    # ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU is how an AVX2-only CPU is reproduced: auto must then pick fp32.
    from tfbert.encoders import registry
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    real_path = registry.Path
    monkeypatch.setattr(registry, "Path", lambda p: real_path(cpuinfo) if p == "/proc/cpuinfo" else real_path(p))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert registry.cpu_has_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert registry.cpu_has_bf16() is native
    assert registry.resolve_precision("auto", "minilm-l6") == ("bf16" if native else "fp32")


def test_encoder_layers_reach_the_run_and_are_refused_where_they_cannot_apply(tmp_path, monkeypatch, checkpoint_dir,
                                                                              tiny_pair):
    """--encoder-layers N converts the kept layers into their own cache entry through the run's encoder resolution;
    an encoder tfbert cannot rebuild (a saved pair) is refused with the reason."""
    from conftest import write_hf_checkpoint

    from tfbert.config import make_config
    from tfbert.encoders.convert import read_metadata
    from tfbert.encoders.registry import EncoderError
    from tfbert.fit import resolve_run_encoder
    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path / "cache"))
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt", layers=3)
    logs = []
    h = resolve_run_encoder(make_config({"encoder": str(src), "encoder_layers": 2, "layer_selection": "spread",
                                         "precision": "fp32", "max_seq_length": 64}), log=logs.append)
    meta = read_metadata(Path(h.encoder).parent)
    assert meta["config"]["num_layers"] == 2 and meta["source_layers"] == [0, 1]
    assert any("transformer layers [0, 1] of 3" in line for line in logs)
    every = resolve_encoder(str(src), log=logs.append)
    assert read_metadata(Path(every.encoder).parent)["config"]["num_layers"] == 3  # a separate entry
    with pytest.raises(EncoderError, match="cannot drop layers"):
        resolve_encoder(str(tiny_pair), layers=1)
