"""Which part of a BERT encoder a variable belongs to, read from its name, for per-layer freezing and rates.

Two namings are known: tfbert-converted encoders (tfbert.encoders.bert: `layer_3_intermediate/kernel:0`,
`embeddings_layer_norm/gamma:0`) and TF Hub's BERT encoders (TF Model Garden: `transformer/layer_3/output/kernel:0`,
`embeddings/layer_norm/gamma:0`); both have `word_embeddings`, `position_embedding`, `type_embeddings` and
`pooler_transform`. Anything else is refused: a wrong guess would freeze or slow down the wrong weights silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NAMINGS = {  # naming -> the pattern of a transformer layer's variables, group 1 its index
    "tfbert": re.compile(r"(?:^|/)layer_(\d+)_[a-z_]+/"),
    "tf-hub": re.compile(r"(?:^|/)transformer/layer_(\d+)/"),
}
EMBEDDINGS = re.compile(r"(?:^|/)(word_embeddings|position_embedding|type_embeddings|embeddings_layer_norm"
                        r"|embeddings/layer_norm)/")
POOLER = re.compile(r"(?:^|/)pooler_transform/")


class LayerNamingError(ValueError):
    """An encoder variable whose name says nothing of its layer; the message names it."""


@dataclass(frozen=True)
class EncoderLayers:
    """The encoder's variables by part. `distance` counts from the top: 0 the pooler (which sits with the task's
    head), 1 the top transformer layer, ..., num_layers the bottom one, num_layers + 1 the embeddings."""
    num_layers: int
    naming: str
    distance: dict[str, int]  # variable name -> distance from the top

    def part(self, distance: int) -> str:
        """The part at `distance` from the top, as run.json and the logs name it."""
        if distance == 0:
            return "pooler"
        return "embeddings" if distance == self.num_layers + 1 else f"layer_{self.num_layers - distance}"


def encoder_layers(names: list[str]) -> EncoderLayers:
    """Maps the encoder's (trainable) variable names to their distance from the top; refuses a naming it does not
    know, naming a variable of it, and layer indices with a gap."""
    layer_of, namings = {}, set()
    for name in names:
        for naming, pattern in NAMINGS.items():
            if m := pattern.search(name):
                layer_of[name] = int(m.group(1))
                namings.add(naming)
                break
        else:
            if not (EMBEDDINGS.search(name) or POOLER.search(name)):
                raise LayerNamingError(
                    f"cannot tell which layer the encoder variable {name!r} belongs to: per-layer options know "
                    "tfbert-converted encoders (layer_N_...) and TF Hub BERT encoders (transformer/layer_N/...)")
    if not layer_of:
        example = names[0] if names else "(no trainable variables)"
        raise LayerNamingError(f"found no transformer layer among the encoder's variables (e.g. {example!r}): "
                               "per-layer options know layer_N_... and transformer/layer_N/... names")
    num_layers = max(layer_of.values()) + 1
    missing = sorted(set(range(num_layers)) - set(layer_of.values()))
    if missing:
        raise LayerNamingError(f"the encoder's variables name layers up to layer_{num_layers - 1} but no layer_"
                               f"{missing[0]} (e.g. {next(iter(layer_of))!r}): not a stack this can map")
    distance = {name: num_layers - layer_of[name] if name in layer_of else
                (0 if POOLER.search(name) else num_layers + 1) for name in names}
    return EncoderLayers(num_layers, " and ".join(sorted(namings)), distance)
