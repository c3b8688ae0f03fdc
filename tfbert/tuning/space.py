"""The search space of `python -m tfbert.tune`: which training settings a search varies, over which values.

A space is a JSON object keyed by training settings (the `python -m tfbert.train` flags with _ for -):

    {"learning_rate": {"min": 1e-5, "max": 2e-4, "log": true},   a range: numbers (int settings: whole numbers)
     "batch_size": [16, 32],                                       a list: the choices
     "layer_lr_decay": [null, 0.9, 0.8]}                           null: the setting off (its flag not given)

Every value is checked as `tfbert.train` would check it, before any trial runs, and an error names the key.
The KerasTuner hyperparameters are made here too: a choice list mixing types (null beside numbers) becomes a
Choice of JSON texts ("null", "0.9"), since KerasTuner's Choice holds one type; `decode` turns them back.
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

from tfbert.config import ConfigError, RunConfig, flag_name, json_value_fits, read_json_file, setting_types

__all__ = ["default_space", "read_space", "check_space", "hyperparameters", "decode", "apply", "show"]

# Settings a search must not vary: what the data is, where results go, how the job runs.
NOT_SEARCHABLE = {f.name for f in fields(RunConfig) if f.metadata.get("group") in ("task", "data", "output")} | {
    "strategy", "preprocess"}


def default_space(config: RunConfig, encoder_layers: int | None) -> dict:
    """The issue's settings around tfbert's values for the task (`config` has the task defaults filled in)."""
    lr, epochs = config.learning_rate, config.epochs
    return {
        "learning_rate": {"min": _round(lr / 5), "max": _round(lr * 4), "log": True},
        "batch_size": [16, 32, 64],
        "epochs": {"min": 1, "max": max(4, 2 * epochs)},
        "dropout": {"min": 0.0, "max": 0.3, "step": 0.05},
        "layer_lr_decay": [None, 0.95, 0.9, 0.8],
        # Freezing the embeddings (0) or the bottom half of the layers; unknown layer count: the embeddings only.
        "freeze_layers": [None, 0] + ([encoder_layers // 2] if encoder_layers and encoder_layers >= 2 else []),
    }


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def read_space(path) -> dict:
    path = Path(path)
    space = read_json_file(path, "--search-space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"--search-space {path}: expected a JSON object of settings to search, e.g. "
                          '{"learning_rate": {"min": 1e-5, "max": 1e-4, "log": true}, "batch_size": [16, 32]}')
    return space


def check_space(space: dict, base: RunConfig, where: str, encoder_layers: int | None = None) -> None:
    """Refuses a space that cannot be searched; the ConfigError names `where` (the file) and the key.

    `base` is the trial settings without the searched ones (task defaults filled in): each choice and range end
    is put into it and checked as a training run checks its flags."""
    types = setting_types()
    for key, spec in space.items():
        at = f"{where}: {key}"
        if key not in types:
            raise ConfigError(f"{at}: unknown setting; the settings are the `python -m tfbert.train --help` flags "
                              "with _ for -")
        if key in NOT_SEARCHABLE:
            raise ConfigError(f"{at}: not a setting to search (data, task and output settings are fixed: give them "
                              "as flags)")
        kind = types[key]
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{at}: an empty list of choices")
            if len({json.dumps(v) for v in spec}) < len(spec):
                raise ConfigError(f"{at}: a choice is listed twice")
            values = spec
        elif isinstance(spec, dict):
            unknown = sorted(set(spec) - {"min", "max", "log", "step"})
            if unknown or not {"min", "max"} <= set(spec):
                raise ConfigError(f"{at}: a range is {{\"min\": ..., \"max\": ...}} with optional \"log\" (true/false) "
                                  f"and \"step\"; got the keys {', '.join(sorted(spec))}")
            if not kind.startswith(("int", "float")):
                raise ConfigError(f"{at}: a range is for numbers; {key} is a {kind}: list its choices instead")
            numeric = all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool)
                          for k in ("min", "max") + (("step",) if "step" in spec else ()))
            if not numeric or not spec["min"] < spec["max"]:
                raise ConfigError(f"{at}: a range needs numbers with min < max; got min {spec['min']!r}, "
                                  f"max {spec['max']!r}")
            if kind.startswith("int") and not all(isinstance(spec[k], int) for k in ("min", "max")):
                raise ConfigError(f"{at}: {key} is a whole number: the range needs whole-number min and max")
            if not isinstance(spec.get("log", False), bool):
                raise ConfigError(f"{at}: \"log\" is true or false")
            if spec.get("log") and spec["min"] <= 0:
                raise ConfigError(f"{at}: a log range needs min > 0")
            if "step" in spec and (spec["step"] <= 0 or spec.get("log")):
                raise ConfigError(f"{at}: \"step\" must be positive, and not with \"log\"")
            values = [spec["min"], spec["max"]]
        else:
            raise ConfigError(f"{at}: expected a list of choices or a {{\"min\", \"max\"}} range, got {spec!r} "
                              f"(a fixed value is a flag: --{flag_name(key)} {spec})")
        for value in values:
            if not json_value_fits(value, kind):
                raise ConfigError(f"{at}: {value!r} is not a valid {kind}")
            try:
                apply(base, {key: value}).check()
            except ConfigError as e:
                raise ConfigError(f"{at}: {value!r} would fail the run's checks: {e}") from None
            if key == "freeze_layers" and encoder_layers is not None and value is not None and value > encoder_layers:
                raise ConfigError(f"{at}: {value} is above the encoder's {encoder_layers} layers")


def apply(config: RunConfig, values: dict) -> RunConfig:
    """`config` with the searched `values` (common settings and task options)."""
    common = {k: v for k, v in values.items() if k in RunConfig.names()}
    options = {k: v for k, v in values.items() if k not in common}
    return config.replace(**common, options={**config.options, **options})


def _encoded(values: list) -> bool:
    """Whether a choice list is held as JSON texts: KerasTuner's Choice takes one type of int, float, str or bool."""
    kinds = {type(v) for v in values}
    return len(kinds) != 1 or not kinds <= {int, float, str, bool}


def hyperparameters(space: dict, base: RunConfig):
    """The KerasTuner HyperParameters of a checked space. Each default is tfbert's value (from `base`) where the
    space holds it, so the first trial (see tfbert.tuning.search) is the baseline of the task's settings."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    types = setting_types()
    for key, spec in space.items():
        current = getattr(base, key, None)
        if isinstance(spec, list):
            encoded = _encoded(spec)
            values = [json.dumps(v) for v in spec] if encoded else list(spec)
            wanted = json.dumps(current) if encoded else current
            hp.Choice(key, values, ordered=False, default=wanted if wanted in values else values[0])
            continue
        low, high, log, step = spec["min"], spec["max"], spec.get("log", False), spec.get("step")
        inside = current is not None and low <= current <= high
        sampling = "log" if log else "linear"
        if types[key].startswith("int"):
            hp.Int(key, low, high, step=step or 1, sampling=sampling, default=current if inside else low)
        else:
            hp.Float(key, float(low), float(high), step=step, sampling=sampling,
                     default=float(current) if inside else float(low))
    return hp


def decode(space: dict, values: dict) -> dict:
    """A trial's hyperparameter values as settings (JSON texts decoded, floats of ranges rounded for reading)."""
    out = {}
    for key, spec in space.items():
        v = values[key]
        if isinstance(spec, list) and _encoded(spec):
            v = json.loads(v)
        elif isinstance(v, float) and not isinstance(spec, list):
            v = float(f"{v:.4g}") if v else 0.0
        out[key] = v
    return out


def show(values: dict) -> str:
    """'learning_rate=3.1e-05 batch_size=16 layer_lr_decay=off' for progress lines."""
    def one(v):
        if v is None:
            return "off"
        if isinstance(v, float):
            return f"{v:.3g}" if v and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:g}" if not math.isnan(v) else "nan"
        return str(v)
    return " ".join(f"{k}={one(v)}" for k, v in values.items())
