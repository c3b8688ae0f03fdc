"""The run configuration: one typed dataclass that is the single source of every training flag.

Each field carries its type, default, help text and group; the CLI parser (`build_parser`), `fine_tune(**settings)`
and `--config run.json` all build a RunConfig from it. Fields whose best value depends on the task default to None
here and are filled in from the task's `defaults` (tfbert/tasks/) by `with_task_defaults`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from tfbert.distribute import STRATEGIES
from tfbert.encoders.registry import DEFAULT_ENCODER

# Settings that do not change what is trained: a resumed run may differ in these.
NON_ESSENTIAL = ("verbose", "debug")


class ConfigError(ValueError):
    """A setting (flag, config file key or value) that cannot work; the message names it."""


def _flag(default, help: str, group: str, **extra):
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass(frozen=True)
class RunConfig:
    task: str = _flag("sentiment", "the job: see the task list above", "task", choices="tasks")
    # data
    train_file: str | None = _flag(None, "CSV, TSV, JSONL or Parquet (CoNLL or JSONL for ner); default for sentiment "
                                         "and ner: the built-in corpus", "data")
    valid_file: str | None = _flag(None, "validation file; default: a stratified split of the train file", "data")
    test_file: str | None = _flag(None, "test file; default: a stratified split of the train file", "data")
    text_column: str = _flag("text", "column holding the text", "data")
    text_b_column: str | None = _flag(None, "second text column: trains on sentence pairs", "data")
    label_column: str = _flag("label", "column holding the label (strings or ints)", "data")
    max_train_examples: int | None = _flag(None, "stratified subsample of the training split, for quick runs", "data")
    # model
    encoder: str = _flag(DEFAULT_ENCODER, "registered name, converted pair directory, Hugging Face checkpoint "
                                          "directory or TF Hub URL", "model")
    preprocess: str | None = _flag(None, "preprocess handle, when --encoder is an unregistered URL or directory",
                                   "model")
    precision: str | None = _flag(None, "encoder compute precision. auto: bf16 when the CPU multiplies bfloat16 "
                                        "natively (AMX or AVX512-BF16) and tfbert builds the encoder (embedded or "
                                        "Hugging Face checkpoint), else fp32", "model",
                                  choices=("auto", "fp32", "bf16"), per_task=True)
    max_seq_length: int = _flag(128, "longest packed input; batches pad to their own longest", "model")
    pooling: str = _flag("pooled", "pooled_output of the encoder, the [CLS] vector, or the mean over tokens "
                                   "(classification)", "model", choices=("pooled", "cls", "mean"))
    dropout: float = _flag(0.1, "dropout before the task head", "model")
    freeze_encoder: bool = _flag(False, "train the task head only", "model")
    freeze_word_embeddings: bool | None = _flag(
        None, "keep the encoder's word-embedding table fixed (half of MiniLM's parameters): AdamW then skips its "
              "dense update, ~1.3x faster steps at the same test accuracy on the tweets", "model", per_task=True)
    # training
    epochs: int | None = _flag(None, "training epochs, raised to reach --min-steps", "training", per_task=True)
    min_steps: int = _flag(300, "minimum optimisation steps: small data sets get more epochs instead of too few "
                                "updates", "training")
    batch_size: int = _flag(32, "examples per training step", "training")
    learning_rate: float | None = _flag(None, "peak learning rate of AdamW", "training", per_task=True)
    warmup_fraction: float = _flag(0.1, "share of steps with linear warm-up", "training")
    weight_decay: float = _flag(0.01, "AdamW weight decay (not on LayerNorm/bias)", "training")
    class_weights: str = _flag("none", "balanced: weight the loss by inverse class frequency, for imbalanced "
                                       "labels (classification)", "training", choices=("none", "balanced"))
    patience: int | None = _flag(None, "epochs without a better validation metric before stopping", "training",
                                 per_task=True)
    seed: int = _flag(0, "seed for splits, shuffling and initialisation", "training")
    strategy: str = _flag("default", "tf.distribute strategy; --batch-size is the global batch, split across "
                                     "replicas (multi_worker reads $TF_CONFIG, tpu reads $TPU_NAME)", "training",
                          choices=STRATEGIES)
    # output
    output_dir: str = _flag("saved_models", "exports go to OUTPUT_DIR/MODEL_NAME/VERSION", "output")
    model_name: str | None = _flag(None, "default: the task name", "output")
    verbose: int | None = _flag(None, "Keras progress: 1 = bars, 2 = a line per epoch; default 1 on a terminal, "
                                      "else 2", "output", choices=(0, 1, 2))
    debug: bool = _flag(False, "show tracebacks for errors", "output")

    # ----------------------------------------------------------------------------------------------------------

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def with_task_defaults(self, defaults: dict) -> RunConfig:
        """Fills the per-task settings left at None from the task's defaults; given values win."""
        return self.replace(**{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def check(self) -> None:
        """Generic checks (task-specific ones live with the task); raises ConfigError naming the flag."""
        checks = [(self.epochs >= 1, "--epochs must be at least 1"),
                  (self.batch_size >= 1, "--batch-size must be at least 1"),
                  (self.learning_rate > 0, "--learning-rate must be positive"),
                  (self.min_steps >= 0, "--min-steps must be >= 0"),
                  (self.patience >= 1, "--patience must be at least 1"),
                  (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
                  (0 <= self.warmup_fraction < 1, "--warmup-fraction must be in [0, 1)"),
                  (self.weight_decay >= 0, "--weight-decay must be >= 0"),
                  (self.max_seq_length >= 3, "--max-seq-length must be at least 3"),
                  (self.max_train_examples is None or self.max_train_examples >= 1,
                   "--max-train-examples must be at least 1")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if isinstance(choices, tuple) and value is not None and value not in choices:
                raise ConfigError(f"--{flag_name(f.name)} must be one of {', '.join(map(str, choices))}, "
                                  f"not {value!r}")


def flag_name(name: str) -> str:
    return name.replace("_", "-")


def read_config_file(path) -> dict:
    """Settings from a JSON file (e.g. a run folder's config.json); unknown keys are an error naming them."""
    path = Path(path)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of settings, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(RunConfig.names()))
    if unknown:
        raise ConfigError(f"--config {path}: unknown settings {', '.join(unknown)}; the settings are the "
                          "`python -m tfbert.train --help` flags with _ for -")
    types = {f.name: f.type for f in fields(RunConfig)}
    for key, value in settings.items():
        if not _json_value_fits(value, types[key]):
            raise ConfigError(f"--config {path}: {key} = {value!r} is not a valid {types[key]}")
    return settings


def _json_value_fits(value, annotation: str) -> bool:
    if value is None:
        return "None" in annotation
    if isinstance(value, bool):
        return annotation.startswith("bool")
    if isinstance(value, int):
        return annotation.startswith(("int", "float"))
    if isinstance(value, float):
        return annotation.startswith("float")
    return isinstance(value, str) and annotation.startswith("str")


# --------------------------------------------------------------------------- the CLI parser, generated


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def _default_text(name: str, default, task_defaults: dict[str, dict]) -> str:
    if default is not None and not isinstance(default, bool):
        return f" (default: {default})"
    if not any(name in d for d in task_defaults.values()):
        return " (default: on)" if default is True else ""
    values = {task: d[name] for task, d in task_defaults.items()}
    show = lambda v: ("on" if v else "off") if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    common = max(set(values.values()), key=list(values.values()).count)
    others = "; ".join(f"{t}: {show(v)}" for t, v in values.items() if v != common)
    return f" (default: {show(common)}{'; ' + others if others else ''})"


def build_parser(tasks: dict, description: str = "") -> argparse.ArgumentParser:
    """The `python -m tfbert.train` parser, generated from RunConfig. `tasks` maps name -> Task (for the task
    list and per-task defaults). Every flag defaults to SUPPRESS, so that the parsed namespace holds exactly the
    flags given: `config_from_args` layers them over --config and the dataclass defaults."""
    task_defaults = {name: task.defaults for name, task in tasks.items()}
    listing = "\n".join(f"  {name:<10} {task.description}" for name, task in tasks.items())
    ap = argparse.ArgumentParser(prog="python -m tfbert.train", formatter_class=_HelpFormatter,
                                 description=f"{description}\ntasks:\n{listing}", argument_default=argparse.SUPPRESS)
    ap.add_argument("--config", metavar="FILE", help="JSON file of settings (keys: these flags with _ for -; a run "
                                                     "folder's config.json reproduces that run); flags given beside "
                                                     "it override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(RunConfig):
        meta = f.metadata
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], ap.add_argument_group(meta["group"]))
        kwargs = {"help": meta["help"] + _default_text(f.name, f.default, task_defaults)}
        choices = meta.get("choices")
        if choices is not None:
            kwargs["choices"] = sorted(tasks) if choices == "tasks" else choices
        if f.type.startswith("bool"):
            kwargs["action"] = argparse.BooleanOptionalAction if "None" in f.type else "store_true"
        else:
            kwargs["type"] = {"int": int, "float": float}.get(f.type.split(" ")[0], str)
        group.add_argument(f"--{flag_name(f.name)}", **kwargs)
    return ap


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """dataclass defaults <- --config file <- flags given on the command line."""
    given = vars(args).copy()
    settings = read_config_file(given.pop("config")) if "config" in given else {}
    settings.update(given)
    return RunConfig(**settings)
