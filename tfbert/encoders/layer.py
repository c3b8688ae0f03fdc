"""The TF Hub encoder as a trainable Keras layer (hub.KerasLayer), with per-variable freezing."""
from __future__ import annotations

import tensorflow_hub as hub


class EncoderLayer(hub.KerasLayer):
    """hub.KerasLayer that keeps the SavedModel variables whose names contain one of `frozen` fixed.

    Used for the word embeddings: their gradient leaves the SavedModel's function dense, so AdamW updates all
    ~30k x hidden rows every step (11.7M of MiniLM's 22.7M parameters: most of the optimizer's time)."""

    def __init__(self, handle, frozen: tuple[str, ...] = (), **kwargs):
        self._frozen = tuple(frozen)
        super().__init__(handle, **kwargs)

    def _add_existing_weight(self, weight, trainable=None):
        if trainable and any(name in weight.name for name in self._frozen):
            trainable = False
        super()._add_existing_weight(weight, trainable=trainable)

    def freeze(self, variables) -> None:
        """Makes these of its trainable variables non-trainable, after construction: the training loop's
        --freeze-layers knows which variables to freeze only once the encoder is loaded and its names are read.
        (Lists rebuilt in place: `list.remove` would compare variables with ==, which is elementwise.)"""
        ids = {id(v) for v in variables}
        moved = [w for w in self._trainable_weights if id(w) in ids]
        self._trainable_weights[:] = [w for w in self._trainable_weights if id(w) not in ids]
        self._non_trainable_weights.extend(moved)


def encoder_layer(encoder_handle: str, *, freeze_encoder: bool = False,
                  freeze_word_embeddings: bool = False) -> EncoderLayer:
    """The TF Hub encoder as the trainable Keras layer that classifier and tagger heads sit on."""
    return EncoderLayer(encoder_handle, frozen=("word_embeddings",) if freeze_word_embeddings else (),
                        trainable=not freeze_encoder, name="encoder")
