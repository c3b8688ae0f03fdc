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


def checkpoint_key(variable_name: str) -> str:
    """The tail of a variable's key in a Keras weights checkpoint (TF object-graph escaping: '.' -> '..',
    '/' -> '.S'). A hub.KerasLayer's variables are saved under their SavedModel names."""
    return variable_name.replace(".", "..").replace("/", ".S") + "/.ATTRIBUTES/VARIABLE_VALUE"


def restore_encoder_weights(layer: EncoderLayer, checkpoint: str) -> int:
    """Loads the encoder's variables from a trained task model's weights checkpoint (a run's checkpoints/best)
    into `layer`; returns how many were read. A variable the checkpoint lacks, or holds twice, is an error: the
    run was trained on another encoder."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint)
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith("layer_with_weights-")]
    for variable in layer.weights:
        tail = "/" + checkpoint_key(variable.name)
        found = [k for k in keys if k.endswith(tail)]
        if len(found) != 1:
            raise ValueError(f"{checkpoint}: {'no' if not found else 'more than one'} saved value for the encoder "
                             f"variable {variable.name!r}: was the run trained with another encoder?")
        value = reader.get_tensor(found[0])
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{checkpoint}: encoder variable {variable.name!r} has shape {tuple(value.shape)} there, "
                             f"{tuple(variable.shape)} here: was the run trained with another encoder?")
        variable.assign(value)
    return len(layer.weights)
