"""Per-layer training of the encoder, for the training loop: --freeze-layers, --unfreeze and --layer-lr-decay.

Works on any task's model: it finds the EncoderLayer in it and reads which layer each variable belongs to
(tfbert.encoders.layer_names). Parts are counted by distance from the top: the task's head and the encoder's
pooler 0, the top transformer layer 1, ..., the embeddings num_layers + 1.

  --freeze-layers N   the embeddings and the bottom N layers become non-trainable variables: the backward pass
                      and the optimizer skip them (faster steps).
  --layer-lr-decay D  a part's rate is D ** distance times the scheduled rate: the head full, the embeddings lowest.
  --unfreeze          the part at distance d starts training at step d * K (K: --unfreeze-every, default one
                      epoch, or less so that every part trains for the second half of the run at least): the
                      head first, then one more layer from the top each K steps. Parts frozen by
                      --freeze-layers stay frozen. Done in the optimizer (tfbert.optim.LayerwiseAdamW says why).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tfbert.config import ConfigError, RunConfig
from tfbert.encoders.layer import EncoderLayer
from tfbert.encoders.layer_names import LayerNamingError, encoder_layers


@dataclass
class LayerPlan:
    optimizer_settings: list = field(default_factory=list)  # (variable, rate factor, first step), for make_optimizer
    facts: dict = field(default_factory=dict)  # for run.json; empty when no per-layer option is set
    last_thaw_step: int = 0  # --unfreeze: the step from which every part the run trains is training


def uses_layers(config: RunConfig) -> bool:
    return config.freeze_layers is not None or config.unfreeze or config.layer_lr_decay is not None


def default_unfreeze_every(steps_per_epoch: int, total_steps: int, thaws: int) -> int:
    """One epoch's steps (ULMFiT's schedule), or fewer so that the last of `thaws` parts starts training by half of
    the run: a one-part-an-epoch schedule left the bottom layers untrained in a 5-epoch run of 2,000 rows."""
    return max(1, min(steps_per_epoch, total_steps // (2 * thaws))) if thaws else steps_per_epoch


def plan_layers(model, config: RunConfig, steps_per_epoch: int, total_steps: int, log=print) -> LayerPlan:
    """Freezes the encoder's bottom layers in `model` (before compiling) and returns the optimizer's per-variable
    settings and the facts of the plan. Raises ConfigError naming the option when the encoder cannot take it."""
    if not uses_layers(config):
        return LayerPlan()
    options = ", ".join(o for o, on in (("--freeze-layers", config.freeze_layers is not None),
                                        ("--unfreeze", config.unfreeze),
                                        ("--layer-lr-decay", config.layer_lr_decay is not None)) if on)
    encoders = [m for m in model.submodules if isinstance(m, EncoderLayer)]
    if len(encoders) != 1:
        raise ConfigError(f"{options}: the {config.task} model has {len(encoders)} encoder layers, not one")
    encoder = encoders[0]
    try:
        layers = encoder_layers([v.name for v in encoder.trainable_weights])
    except LayerNamingError as e:
        raise ConfigError(f"{options}: {e}") from None
    top = layers.num_layers + 1  # the embeddings' distance
    if config.freeze_layers is not None and config.freeze_layers > layers.num_layers:
        raise ConfigError(f"--freeze-layers {config.freeze_layers} is more than the encoder's {layers.num_layers} "
                          "transformer layers")
    # Parts at this distance or beyond are frozen: the embeddings and the bottom N layers.
    frozen_from = top - config.freeze_layers if config.freeze_layers is not None else top + 1
    encoder.freeze([v for v in encoder.trainable_weights if layers.distance[v.name] >= frozen_from])
    present = sorted(set(layers.distance.values()))
    trained = [d for d in present if d < frozen_from]
    every = config.unfreeze_every or default_unfreeze_every(steps_per_epoch, total_steps, max(trained, default=0))
    decay = config.layer_lr_decay if config.layer_lr_decay is not None else 1.0
    factor = lambda d: decay ** d  # noqa: E731
    first_step = lambda d: d * every if config.unfreeze else 0  # noqa: E731
    plan = LayerPlan([(v, factor(d), first_step(d)) for v in encoder.trainable_weights
                      for d in [layers.distance[v.name]]])
    facts = {"encoder_layers": layers.num_layers, "naming": layers.naming,
             "frozen": [layers.part(d) for d in present if d >= frozen_from],
             "rate_factors": {"head": 1.0, **{layers.part(d): round(factor(d), 6) for d in trained}}}
    if config.unfreeze:
        facts["first_step"] = {"head": 0, **{layers.part(d): first_step(d) for d in trained}}
        last = first_step(max(trained, default=0))
        plan.last_thaw_step = last
        if last >= total_steps:
            log(f"warning: --unfreeze reaches {layers.part(max(trained))} only at step {last}, after the run's "
                f"{total_steps} steps: lower --unfreeze-every or raise --epochs")
    plan.facts = facts
    log(f"layers: {layers.num_layers} transformer layers ({layers.naming} naming); frozen: "
        f"{', '.join(facts['frozen']) or 'none'}; rate factors: "
        + ", ".join(f"{k} {v:g}" for k, v in facts["rate_factors"].items())
        + (f"; unfreezing one part every {every} steps" if config.unfreeze else ""))
    return plan
