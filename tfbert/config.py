"""The run configuration: one typed dataclass that is the single source of every training flag.

Each field carries its type, default, help text and group; the CLI parser (`build_parser`), `fine_tune(**settings)`
(`make_config`) and `--config run.json` all build a RunConfig from it. Fields whose best value depends on the task
default to None here and are filled in from the task's `defaults` by `with_task_defaults`. A task's own settings
(e.g. classification's --pooling) are the fields of its `options` dataclass, made with `flag` like these: they
become flags too, are held in `RunConfig.options` and read as attributes (`config.pooling`), so a new task adds
flags without an edit here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from tfbert.distribute import STRATEGIES
from tfbert.encoders.checkpoint import LAYER_SELECTIONS
from tfbert.encoders.registry import DEFAULT_ENCODER

# Settings that do not change what is trained: a resumed run may differ in these.
NON_ESSENTIAL = ("verbose", "debug")
# Folder data settings: only tasks with `reads_folders` take them (check_task).
FOLDER_SETTINGS = ("train_dir", "valid_dir", "test_dir")
# --augment's operations, in the order they are applied (tfbert.data.augment): word level, then wordpiece level.
AUGMENT_OPS = ("synonym", "delete", "swap", "cutoff", "mask")


class ConfigError(ValueError):
    """A setting (flag, config file key or value) that cannot work; the message names it."""


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'epochs'?)' for the closest of `known`, or '' when none is close."""
    import difflib
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def flag(default, help: str, group: str = "", **extra):
    """A setting: its default and help text, the --help group it shows in, optional choices and whether its
    default depends on the task (per_task: the field defaults to None and the task's `defaults` fill it in)."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass(frozen=True)
class RunConfig:
    task: str = flag("sentiment", "the job: see the task list above", "task", choices="tasks")
    # data
    train_file: str | None = flag(None, "CSV, TSV, JSONL or Parquet (CoNLL or JSONL for ner; SQuAD JSON or JSONL for "
                                         "qa); default: the task's built-in corpus (every task but classify has one)", "data")
    valid_file: str | None = flag(None, "validation file; default: a stratified split of the train file", "data")
    test_file: str | None = flag(None, "test file; default: a stratified split of the train file", "data")
    train_dir: str | None = flag(None, "instead of --train-file, for sentiment and classify: a folder with one "
                                       "sub-folder of .txt files per class (the layout of Keras' "
                                       "text_dataset_from_directory; labels are the folder names)", "data")
    valid_dir: str | None = flag(None, "validation folder of class folders, instead of --valid-file", "data")
    test_dir: str | None = flag(None, "test folder of class folders, instead of --test-file", "data")
    text_column: str = flag("text", "column holding the text; several, comma-separated (title,body), are joined "
                                    "with ' | ' between them", "data")
    text_b_column: str | None = flag(None, "second text column: trains on sentence pairs", "data")
    label_column: str = flag("label", "column holding the label (strings or ints)", "data")
    max_train_examples: int | None = flag(None, "stratified subsample of the training split, for quick runs", "data")
    # model
    encoder: str = flag(DEFAULT_ENCODER, "registered name, converted pair directory, Hugging Face checkpoint "
                                          "directory or TF Hub URL", "model")
    preprocess: str | None = flag(None, "preprocess handle, when --encoder is an unregistered URL or directory",
                                   "model")
    precision: str | None = flag(None, "encoder compute precision. auto: bf16 when the CPU multiplies bfloat16 "
                                        "natively (AMX or AVX512-BF16) and tfbert builds the encoder (embedded or "
                                        "Hugging Face checkpoint), else fp32", "model",
                                  choices=("auto", "fp32", "bf16"), per_task=True)
    encoder_layers: int | None = flag(None, "keep N of the encoder's transformer layers (with its embeddings and "
                                            "pooler): a smaller, faster model from the encoder's own weights, for "
                                            "encoders tfbert converts (embedded or Hugging Face checkpoint); default "
                                            "all", "model")
    layer_selection: str = flag("bottom", "--encoder-layers: which layers are kept. bottom: the first N; spread: "
                                          "evenly spaced from the bottom one up (0, 2, 4 of 6, as DistilBERT takes "
                                          "every other layer)", "model", choices=LAYER_SELECTIONS)
    max_seq_length: int = flag(128, "longest packed input; batches pad to their own longest", "model")
    long_texts: str = flag("truncate", "which wordpieces of a text longer than the window (--max-seq-length less "
                                       "[CLS]/[SEP]) are kept, in training and in the export. truncate: the first "
                                       "ones; head-tail: the first quarter and the last three quarters of the window "
                                       "(128 + 382 at 512, Sun et al. 2019), for each segment's round-robin share "
                                       "of a pair; windows: every wordpiece, through overlapping windows whose "
                                       "outputs are pooled per text (--window-pooling; single texts of sentiment, "
                                       "classify, regression, multilabel); ner tags each word from the window where it has "
                                       "most context", "model",
                           choices=("truncate", "head-tail", "windows"))
    window_stride: int | None = flag(None, "--long-texts windows: wordpieces a window advances; default half the "
                                           "window (63 at --max-seq-length 128)", "model")
    max_windows: int = flag(128, "--long-texts windows: most windows read per text (the first ones; past them a "
                                 "text is cut), so one request cannot take unbounded memory; in the export's "
                                 "metadata", "model")
    window_pooling: str | None = flag(
        None, "--long-texts windows: how a text's windows' outputs become the text's. attention (the default): a "
              "weighted mean whose weights follow the windows' outputs, fitted after training on the validation "
              "texts, so one decisive part can outweigh many neutral ones (the mean when fewer than 8 validation "
              "texts have several windows); mean: every window's evidence added; max: per label, the most "
              "confident window decides; in the export's metadata", "model", choices=("attention", "mean", "max"))
    dropout: float = flag(0.1, "dropout before the task head", "model")
    freeze_encoder: bool = flag(False, "train the task head only", "model")
    freeze_word_embeddings: bool | None = flag(
        None, "keep the encoder's word-embedding table fixed (half of MiniLM's parameters): AdamW then skips its "
              "dense update, ~1.3x faster steps at the same test accuracy on the tweets", "model", per_task=True)
    # training
    epochs: int | None = flag(None, "training epochs, raised to reach --min-steps", "training", per_task=True)
    min_steps: int = flag(300, "minimum optimisation steps: small data sets get more epochs instead of too few "
                                "updates", "training")
    batch_size: int = flag(32, "examples per training step", "training")
    learning_rate: float | None = flag(None, "peak learning rate of AdamW", "training", per_task=True)
    warmup_fraction: float = flag(0.1, "share of steps with linear warm-up", "training")
    weight_decay: float = flag(0.01, "AdamW weight decay (not on LayerNorm/bias)", "training")
    freeze_layers: int | None = flag(None, "keep the encoder's embeddings and bottom N transformer layers fixed "
                                           "(not trained: faster steps)", "training")
    unfreeze: bool = flag(False, "gradual unfreezing: train the head first, then one more encoder layer from the "
                                 "top every --unfreeze-every steps (layers held by --freeze-layers stay fixed)",
                          "training")
    unfreeze_every: int | None = flag(None, "steps between two unfreezings; default: one epoch, or fewer so that the "
                                            "last part starts by half of the run", "training")
    layer_lr_decay: float | None = flag(None, "layer-wise rate decay D: an encoder layer's rate is D ** its distance "
                                              "from the top (head and pooler at the full rate, embeddings lowest), "
                                              "e.g. 0.9", "training")
    augment: str | None = flag(None, "augment the training split, a new copy each epoch (never validation, test or "
                                     "export): comma-separated operations from delete, swap, synonym (needs "
                                     "--synonyms), cutoff, mask; e.g. delete,swap,mask", "augmentation")
    augment_strength: float = flag(0.1, "share of the words (delete, swap, synonym) or wordpieces (cutoff span, "
                                         "mask) each --augment operation changes, in (0, 1)", "augmentation")
    synonyms: str | None = flag(None, "for --augment synonym: UTF-8 file of lines `word = synonym, synonym, ...` "
                                      "(# comments, one word each)", "augmentation")
    patience: int | None = flag(None, "epochs without a better validation metric before stopping", "training",
                                 per_task=True)
    seed: int = flag(0, "seed for splits, shuffling and initialisation", "training")
    strategy: str = flag("default", "tf.distribute strategy; --batch-size is the global batch, split across "
                                     "replicas (multi_worker reads $TF_CONFIG, tpu reads $TPU_NAME)", "training",
                          choices=STRATEGIES)
    # output
    output_dir: str = flag("saved_models", "exports go to OUTPUT_DIR/MODEL_NAME/VERSION", "output")
    model_name: str | None = flag(None, "default: the task name", "output")
    verbose: int | None = flag(None, "Keras progress: 1 = bars, 2 = a line per epoch; default 1 on a terminal, "
                                      "else 2", "output", choices=(0, 1, 2))
    debug: bool = flag(False, "show tracebacks for errors, and TensorFlow's C++ log lines", "output")
    # The task's own settings (fields of its `options` dataclass), filled with their defaults by with_task_defaults.
    options: dict = field(default_factory=dict, metadata={"internal": True})

    def __getattr__(self, name):  # only for names that are not fields: the task's options
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"RunConfig has no setting {name!r}")

    # ----------------------------------------------------------------------------------------------------------

    @classmethod
    def names(cls) -> list[str]:
        """The settings common to every task (the task options are not among them)."""
        return [f.name for f in fields(cls) if not f.metadata.get("internal")]

    def to_dict(self) -> dict:
        """Flat settings, the task's options beside the common ones: what config.json and --config hold."""
        out = {name: getattr(self, name) for name in self.names()}
        return {**out, **self.options}

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def with_task_defaults(self, task, log=print) -> RunConfig:
        """Fills the per-task settings left at None from `task.defaults` (given values win) and completes the
        task's options with their defaults; options of other tasks are dropped with a warning."""
        known = {f.name for f in fields(task.options)} if task.options else set()
        for name in sorted(set(self.options) - known):
            log(f"warning: --{flag_name(name)} does not apply to --task {task.name}; ignored")
        options = dataclasses.asdict(task.options(**{k: v for k, v in self.options.items() if k in known})) \
            if task.options else {}
        return self.replace(options=options, **{k: v for k, v in task.defaults.items() if getattr(self, k) is None})

    def check_task(self, task) -> None:
        """Refuses settings that the task does not read (warning and ignoring them would train on other data)."""
        given = [name for name in FOLDER_SETTINGS if getattr(self, name) is not None]
        if given and not getattr(task, "reads_folders", False):
            raise ConfigError(f"--{flag_name(given[0])}: folder data (one sub-folder of .txt files per class) is for "
                              f"the classification tasks (sentiment, classify); --task {task.name} reads files "
                              "(--train-file, --valid-file, --test-file)")
        if self.augment is not None and not getattr(task, "augments", False):
            raise ConfigError(f"--augment: --task {task.name} does not augment its training data; train without "
                              "--augment (docs/pages/guides/small-data.md)")
        for split in ("train", "valid", "test"):
            if getattr(self, f"{split}_file") is not None and getattr(self, f"{split}_dir") is not None:
                raise ConfigError(f"--{split}-file {getattr(self, f'{split}_file')} and --{split}-dir "
                                  f"{getattr(self, f'{split}_dir')} were both given: pass one of them")

    def _layer_checks(self) -> list[tuple[bool, str]]:
        frozen = "with --freeze-encoder the encoder does not train"
        return [(self.encoder_layers is None or self.encoder_layers >= 1,
                 f"--encoder-layers must be at least 1, not {self.encoder_layers}"),
                (self.encoder_layers is not None or self.layer_selection == "bottom",
                 "--layer-selection chooses the layers --encoder-layers keeps: give --encoder-layers N"),
                (self.freeze_layers is None or self.freeze_layers >= 0,
                 f"--freeze-layers must be >= 0, not {self.freeze_layers}"),
                (self.unfreeze_every is None or self.unfreeze_every >= 1,
                 f"--unfreeze-every must be at least 1, not {self.unfreeze_every}"),
                (self.unfreeze_every is None or self.unfreeze, "--unfreeze-every needs --unfreeze"),
                (self.layer_lr_decay is None or 0 < self.layer_lr_decay <= 1,
                 f"--layer-lr-decay must be in (0, 1], not {self.layer_lr_decay}"),
                *[(not (self.freeze_encoder and on), f"{name}: {frozen}") for name, on in (
                    ("--freeze-layers", self.freeze_layers is not None), ("--unfreeze", self.unfreeze),
                    ("--layer-lr-decay", self.layer_lr_decay is not None))]]

    def _augment_checks(self) -> list[tuple[bool, str]]:
        ops = [o.strip() for o in self.augment.split(",")] if self.augment is not None else []
        unknown = [o for o in ops if o not in AUGMENT_OPS]
        return [(not unknown, f"--augment {self.augment!r}: unknown operation {', '.join(map(repr, unknown))}; choose from "
                              f"{', '.join(AUGMENT_OPS)} (comma-separated)"),
                (len(set(ops)) == len(ops), f"--augment {self.augment!r}: an operation is listed twice"),
                (0 < self.augment_strength < 1, f"--augment-strength must be in (0, 1), not {self.augment_strength}"),
                (self.synonyms is None or "synonym" in ops, "--synonyms is read by --augment synonym only"),
                (self.synonyms is not None or "synonym" not in ops, "--augment synonym needs --synonyms FILE"),
                # Augmenting changes a text's length, so its window count per epoch: the schedule needs it fixed.
                (not ops or self.long_texts != "windows", "--augment does not combine with --long-texts windows "
                                                           "(an augmented text's window count changes each epoch)")]

    def _output_dir_checks(self) -> list[tuple[bool, str]]:
        """Before any work: the run folder and the export must be writable there (found at the end otherwise)."""
        out = Path(self.output_dir)
        existing = next((p for p in (out, *out.parents) if p.exists()), None)
        if existing is None:
            return []
        where = "" if existing == out else f" (its nearest existing folder {existing})"
        return [(existing.is_dir(), f"--output-dir {out}: {existing} is a file, not a folder"),
                (not existing.is_dir() or os.access(existing, os.W_OK | os.X_OK),
                 f"--output-dir {out}: not writable{where}")]

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
                  (self.window_stride is None or 1 <= self.window_stride <= self.max_seq_length - 2,
                   f"--window-stride must be between 1 and the window, --max-seq-length less 2 "
                   f"({self.max_seq_length - 2}), not {self.window_stride}"),
                  (self.max_windows >= 1, "--max-windows must be at least 1"),
                  (self.window_pooling is None or self.long_texts == "windows",
                   f"--window-pooling {self.window_pooling} pools the windows of --long-texts windows; add "
                   "--long-texts windows, or leave --window-pooling out"),
                  (self.max_train_examples is None or self.max_train_examples >= 1,
                   "--max-train-examples must be at least 1"),
                  (self.model_name is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", self.model_name),
                   f"--model-name {self.model_name!r}: one folder name of letters, digits, '.', '_' and '-', "
                   "starting with a letter or digit (it is a folder under --output-dir)"),
                  *self._output_dir_checks()] + self._layer_checks() + self._augment_checks()
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        choices = {f.name: f.metadata.get("choices") for f in fields(self)}
        for f in _fields_of(self.options):
            choices[f.name] = f.metadata.get("choices")
        for name, allowed in choices.items():
            value = getattr(self, name, None)
            if isinstance(allowed, tuple) and value is not None and value not in allowed:
                raise ConfigError(f"--{flag_name(name)} must be one of {', '.join(map(str, allowed))}, not {value!r}")


_OPTION_FIELDS: dict[str, dataclasses.Field] = {}  # every task's option fields by name, as registered


def register_options(option_classes) -> None:
    """Makes the tasks' option dataclasses known to make_config, --config and the checks (tfbert.tasks does it)."""
    for cls in option_classes:
        for f in fields(cls):
            if f.name in {g.name for g in fields(RunConfig)}:
                raise ValueError(f"task option {f.name!r} of {cls.__name__} shadows a common setting")
            _OPTION_FIELDS.setdefault(f.name, f)


def _fields_of(options: dict):
    return [_OPTION_FIELDS[name] for name in options if name in _OPTION_FIELDS]


def make_config(settings: dict) -> RunConfig:
    """A RunConfig from flat settings (flags as keywords, a --config file): common settings become fields, the
    tasks' options go into `options`. An unknown name raises TypeError naming it."""
    unknown = sorted(set(settings) - set(RunConfig.names()) - set(_OPTION_FIELDS))
    if unknown:
        hints = "".join(did_you_mean(u, [*RunConfig.names(), *_OPTION_FIELDS]) for u in unknown[:1])
        raise TypeError(f"unknown settings {', '.join(unknown)}{hints}; the settings are the `python -m tfbert.train "
                        "--help` flags with _ for -")
    common = {k: v for k, v in settings.items() if k in RunConfig.names()}
    return RunConfig(**common, options={k: v for k, v in settings.items() if k in _OPTION_FIELDS})


def flag_name(name: str) -> str:
    return name.replace("_", "-")


def read_json_file(path, flag: str, example: str = "a JSON file"):
    """A JSON file a flag names (--config, --tasks-file, --search-space); ConfigError naming the flag, the file and
    what is wrong (missing, a folder: give `example`, not UTF-8, the line and column of bad JSON)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{flag} {path}: is a directory; give {example}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {path}: byte {e.start} is not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def read_config_file(path) -> dict:
    """Settings from a JSON file (e.g. a run folder's config.json); unknown keys are an error naming them."""
    path = Path(path)
    settings = read_json_file(path, "--config", "a JSON file such as a run folder's runs/<N>/config.json")
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of settings, got {type(settings).__name__}")
    types = setting_types()
    unknown = sorted(set(settings) - set(types))
    if unknown:
        raise ConfigError(f"--config {path}: unknown settings {', '.join(unknown)}{did_you_mean(unknown[0], types)}; "
                          "the settings are the `python -m tfbert.train --help` flags with _ for -")
    for key, value in settings.items():
        if not json_value_fits(value, types[key]):
            raise ConfigError(f"--config {path}: {key} = {value!r} is not a valid {types[key]}")
    return settings


def setting_types() -> dict[str, str]:
    """Every setting's type as written ("int | None"), the tasks' options included: what a --config file's values
    (and tfbert.tune's search spaces) are checked against."""
    return {f.name: _type_name(f) for f in [*fields(RunConfig), *_OPTION_FIELDS.values()]
            if not f.metadata.get("internal")}


def _type_name(f: dataclasses.Field) -> str:
    """A field's annotation as written ("int | None"), also for modules without postponed annotations."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def json_value_fits(value, annotation: str) -> bool:
    """Whether a JSON value suits a setting of type `annotation` (an int suits a float; null only an optional)."""
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


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are two lines (the error, with the closest flag or choice when one is close,
    and where the flags are listed) instead of the whole generated usage. Flags are not abbreviated: `--epoch 3`
    is an error naming --epochs, not a run that reads it as --epochs (and breaks when a flag `--epoch...` is added)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        hint = ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        unknown = re.search(r"unrecognized arguments: (--[^\s=]+)", message)
        if unknown:
            flags = [o for a in self._actions for o in a.option_strings]
            hint = did_you_mean(unknown.group(1), flags)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n{self.prog} --help lists the flags\n")


def _default_text(name: str, default, task_defaults: dict[str, dict]) -> str:
    if default is not None and not isinstance(default, bool):
        return f" (default: {default})"
    if not any(name in d for d in task_defaults.values()):
        return " (default: on)" if default is True else ""
    values = {task: d[name] for task, d in task_defaults.items()}
    show = lambda v: ("on" if v else "off") if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    listed = list(values.values())
    common = max(listed, key=listed.count)  # on a tie, the first task's (sentiment: the default job's)
    others = "; ".join(f"{t}: {show(v)}" for t, v in values.items() if v != common)
    return f" (default: {show(common)}{'; ' + others if others else ''})"


def build_parser(tasks: dict, description: str = "") -> argparse.ArgumentParser:
    """The `python -m tfbert.train` parser, generated from RunConfig and the tasks' options. `tasks` maps name ->
    task spec (tfbert.tasks.catalog: the task list, per-task defaults and options). Every flag defaults to SUPPRESS, so that the parsed
    namespace holds exactly the flags given: `config_from_args` layers them over --config and the defaults."""
    task_defaults = {name: task.defaults for name, task in tasks.items()}
    listing = "\n".join(f"  {name:<10} {task.description}" for name, task in tasks.items())
    ap = CommandParser(prog="python -m tfbert.train", formatter_class=_HelpFormatter,
                                 description=f"{description}\ntasks:\n{listing}", argument_default=argparse.SUPPRESS)
    ap.add_argument("--config", metavar="FILE", help="JSON file of settings (keys: these flags with _ for -; a run "
                                                     "folder's config.json reproduces that run); flags given beside "
                                                     "it override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    option_groups: dict[type, list[str]] = {}
    for name, task in tasks.items():
        if task.options:
            option_groups.setdefault(task.options, []).append(name)
    all_fields = [(f, f.metadata["group"]) for f in fields(RunConfig) if not f.metadata.get("internal")]
    users: dict[str, list[str]] = {}  # option name -> the tasks that have it (tasks may share an option)
    option_defaults: dict[str, dict[str, object]] = {}  # option name -> task -> its default (they may differ)
    for cls, names in option_groups.items():
        for f in fields(cls):
            users.setdefault(f.name, []).extend(names)
            option_defaults.setdefault(f.name, {}).update({n: f.default for n in names})
    seen = set()
    for cls in option_groups:
        for f in fields(cls):
            if f.name not in seen:
                seen.add(f.name)
                all_fields.append((f, f"options of --task {' and '.join(users[f.name])}"))
    for f, group_name in all_fields:
        meta = f.metadata
        group = groups.get(group_name) or groups.setdefault(group_name, ap.add_argument_group(group_name))
        per_task = option_defaults.get(f.name, {})
        if len({str(v) for v in per_task.values()}) > 1:  # a shared option whose default differs between tasks
            kwargs = {"help": meta["help"] + _default_text(f.name, None, {t: {f.name: v} for t, v in per_task.items()})}
        else:
            kwargs = {"help": meta["help"] + _default_text(f.name, f.default, task_defaults)}
        choices = meta.get("choices")
        if choices is not None:
            kwargs["choices"] = sorted(tasks) if choices == "tasks" else choices
        kind = _type_name(f)
        if kind.startswith("bool"):
            kwargs["action"] = argparse.BooleanOptionalAction if "None" in kind else "store_true"
        else:
            kwargs["type"] = {"int": int, "float": float}.get(kind.split(" ")[0], str)
        group.add_argument(f"--{flag_name(f.name)}", **kwargs)
    return ap


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """dataclass defaults <- --config file <- flags given on the command line."""
    given = vars(args).copy()
    settings = read_config_file(given.pop("config")) if "config" in given else {}
    settings.update(given)
    return make_config(settings)
