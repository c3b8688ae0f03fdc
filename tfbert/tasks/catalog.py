"""The task catalog: what the command line and a run's first checks need of each task, without TensorFlow.

A task is two classes: its spec here (name, description, defaults, monitored metric, options, the setting checks,
reading and validating its data) and its implementation (tfbert/tasks/<task>.py: datasets, head, loss, export),
which subclasses the spec and tfbert.tasks.base.Task and imports TensorFlow. The parser of `python -m
tfbert.train` and the first steps of tfbert.fit (settings, then the data) read the specs only, so that a bad
flag, file or column is reported in about a second, before TensorFlow loads (7-12 s); the implementation is
imported when the run needs it (tfbert.tasks.create).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from tfbert.config import ConfigError, flag, register_options


class TaskSpec:
    """What a task is, before any model: subclasses set the class attributes and implement load_data/describe.
    `config` is a tfbert.config.RunConfig with the task's defaults filled in."""

    name: ClassVar[str]
    description: ClassVar[str]
    # "module:Class" of the implementation (a subclass of this spec and tfbert.tasks.base.Task).
    implementation: ClassVar[str]
    # Per-task values of the RunConfig fields that default to None (epochs, learning_rate, ...).
    defaults: ClassVar[dict[str, Any]]
    # The key the validation callback writes into the epoch logs; early stopping and the best checkpoint follow it.
    monitor: ClassVar[str]
    # What a training row is called in logs and summaries ("rows", "sentences").
    unit: ClassVar[str] = "rows"
    # The task's own settings: a dataclass whose fields are made with tfbert.config.flag. They become flags of
    # `python -m tfbert.train` (in a group of their own) and are read from the config as attributes.
    options: ClassVar[type | None] = None
    # Whether the task reads --train-dir/--valid-dir/--test-dir (folders of class folders); others refuse them.
    reads_folders: ClassVar[bool] = False
    # Whether the task's training datasets apply --augment (tfbert.data.augment); others refuse the flag.
    augments: ClassVar[bool] = False
    # Whether the export serves raw text, checked in a fresh process (tfbert.export.publish); pre-training's
    # export is an encoder pair for later fine-tuning.
    serves_text: ClassVar[bool] = True

    def check_config(self, config, log=print) -> None:
        """Task-specific setting checks; raise tfbert.config.ConfigError. Warn (log) about settings it ignores."""

    def monitor_of(self, config) -> str:
        """The monitored key for this run's settings (default: the class's `monitor`)."""
        return self.monitor

    def load_data(self, config):
        """Read, validate and split the data; returns an object with `train`, `valid`, `test` and `notes`."""
        raise NotImplementedError

    def describe(self, data) -> str:
        """One log line on the data (split sizes, labels)."""
        raise NotImplementedError

    def run_facts(self, data) -> dict:
        """Facts of the data that a resumed run must share (label names...): stored in the run folder."""
        return {}

    def rows(self, data, split: str) -> int:
        """The number of `unit`s in a split ("train", "valid", "test") of `load_data`'s result."""
        return len(getattr(data, split))


# --------------------------------------------------------------------------- classification (sentiment, classify)

POOLING = ("pooled", "cls", "mean")


@dataclass(frozen=True)
class TfliteOption:
    """The pooled-head tasks' (classification, multi-label, regression) --tflite: one flag, one exporter
    (tfbert.export.tflite)."""
    tflite: bool = flag(False, "also write the version's assets.extra/model.tflite: tokenizer and model in one "
                               "TensorFlow Lite model with int8 weights, for CPU serving without TensorFlow's "
                               "runtime (single texts, --long-texts truncate)")


@dataclass(frozen=True)
class ClassificationOptions(TfliteOption):
    pooling: str = flag("pooled", "pooled_output of the encoder, the [CLS] vector, or the mean over tokens",
                        choices=POOLING)
    class_weights: str = flag("auto", "balanced: weight the loss by inverse class frequency; auto: balanced when "
                                      "the largest training class has more than 4x the rows of the smallest",
                              choices=("auto", "none", "balanced"))
    calibrate: bool = flag(False, "temperature scaling: after training, fit T > 0 on the validation split (least "
                                  "log-loss); the export serves softmax(logits / T)")
    tune_threshold: str = flag("none", "f1: two labels only; choose the threshold on the second label's probability "
                                       "with the best validation F1; the export's label follows it",
                               choices=("none", "f1"))
    teacher: str | None = flag(None, "distillation: a classifier export (or model directory: its latest version) "
                                     "whose answers on the training texts the model learns besides the labels, e.g. "
                                     "a smaller student (--encoder-layers) of it; python -m tfbert.distill sets it")
    distill_temperature: float = flag(2.0, "--teacher: the temperature tau softening the teacher's probabilities "
                                           "(softmax(log p / tau)) and the student's in the soft term")
    distill_weight: float = flag(0.5, "--teacher: the soft term's share alpha of the loss; 1 - alpha is the "
                                      "labels' (0: labels only, 1: the teacher only)")
    valid_min_per_class: int = flag(0, "without --valid-file: move training rows to the validation split until "
                                       "every class has this many there (at most a third of a class), so that "
                                       "early stopping's macro-F1 does not turn on one or two texts; 0: off")


def check_distillation(config) -> None:
    from tfbert.distillation import check_teacher
    if config.teacher is None:
        defaults = {f.name: f.default for f in fields(ClassificationOptions)}
        changed = [f"--{n.replace('_', '-')}" for n in ("distill_temperature", "distill_weight")
                   if getattr(config, n) != defaults[n]]
        if changed:
            raise ConfigError(f"{', '.join(changed)}: distillation settings need --teacher EXPORT")
        return
    if not config.distill_temperature > 0:
        raise ConfigError(f"--distill-temperature must be > 0, not {config.distill_temperature}")
    if not 0 <= config.distill_weight <= 1:
        raise ConfigError(f"--distill-weight must be in [0, 1], not {config.distill_weight}")
    check_teacher(config.teacher)


def refuse_windowed_pairs(config) -> None:
    if config.long_texts == "windows" and config.text_b_column is not None:
        raise ConfigError("--long-texts windows reads single texts; for sentence pairs (--text-b-column) use "
                          "--long-texts truncate or head-tail")


def check_tflite(config, pairs: bool = True) -> None:
    """`pairs`: whether the task reads --text-b-column (multi-label ignores it)."""
    paired = pairs and config.text_b_column is not None
    if config.tflite and (paired or config.long_texts != "truncate"):
        given = "--text-b-column" if paired else f"--long-texts {config.long_texts}"
        raise ConfigError(f"--tflite with {given}: the TFLite model reads single texts cut to the window "
                          "(--long-texts truncate)")


class ClassificationSpec(TaskSpec):
    name = "classify"
    description = "single-text or sentence-pair classification on your own files (--train-file required)"
    implementation = "tfbert.tasks.classification:ClassificationTask"
    # bf16 and frozen word embeddings: same test accuracy on the tweets, ~2x faster steps (docs/pages/benchmarks.md).
    defaults = {"epochs": 2, "learning_rate": 5e-5, "patience": 3, "precision": "auto", "freeze_word_embeddings": True}
    monitor = "val_macro_f1"
    options = ClassificationOptions
    reads_folders = True
    augments = True

    def check_config(self, config, log=print) -> None:
        if self.name == "classify" and not config.train_file and not config.train_dir:
            raise ConfigError("--task classify needs --train-file or --train-dir")
        refuse_windowed_pairs(config)
        check_tflite(config)
        if config.valid_min_per_class < 0:
            raise ConfigError(f"--valid-min-per-class must be 0 or more, not {config.valid_min_per_class}")
        if config.valid_min_per_class and (config.valid_file or config.valid_dir):
            given = f"--valid-file {config.valid_file}" if config.valid_file else f"--valid-dir {config.valid_dir}"
            raise ConfigError(f"--valid-min-per-class shapes the validation split cut from the training data; {given} "
                              "was given, so there is none to shape: drop one of the two")
        check_distillation(config)

    def load_data(self, config):
        from tfbert.data.classification import load_dataset
        data = load_dataset(config.train_file, config.valid_file, config.test_file, text_column=config.text_column,
                            label_column=config.label_column, text_b_column=config.text_b_column, seed=config.seed,
                            max_train_examples=config.max_train_examples,
                            valid_min_per_class=config.valid_min_per_class, min_rows=config.batch_size,
                            train_dir=config.train_dir, valid_dir=config.valid_dir, test_dir=config.test_dir)
        if config.tune_threshold != "none":  # refused before training, not after it
            if len(data.labels) != 2:
                raise ConfigError(f"--tune-threshold {config.tune_threshold} needs two labels (a binary classifier); "
                                  f"the data has {len(data.labels)}: {', '.join(data.labels[:20])}")
            if not (data.valid["label_id"] == 1).any():
                raise ConfigError(f"--tune-threshold {config.tune_threshold}: the validation split has no row "
                                  f"labelled {data.labels[1]!r}, so F1 cannot choose a threshold")
        return data

    def describe(self, data) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test rows; "
                f"labels {data.labels}")

    def run_facts(self, data) -> dict:
        return {"labels": data.labels}


class SentimentSpec(ClassificationSpec):
    name = "sentiment"
    description = "single-text classification; default data: the built-in tweet corpus (negative/neutral/positive)"
    implementation = "tfbert.tasks.classification:SentimentTask"


# --------------------------------------------------------------------------- ner

# --long-texts a tagger takes: every word is tagged, so none may be skipped (head-tail).
TAGGER_LONG_TEXTS = ("truncate", "windows")


class NerSpec(TaskSpec):
    name = "ner"
    description = ("named-entity recognition (BIO tags; CoNLL or JSONL files); default data: the built-in Twitter "
                   "NER corpus")
    implementation = "tfbert.tasks.ner:NerTask"
    # ~1.9k short sentences: more passes, and a token head learns faster with a higher peak rate. fp32 with trained
    # word embeddings: bf16 runs scored 0.528-0.536 entity F1 against 0.541-0.563 in fp32.
    defaults = {"epochs": 12, "learning_rate": 3e-4, "patience": 5, "precision": "fp32",
                "freeze_word_embeddings": False}
    monitor = "val_entity_f1"
    unit = "sentences"

    def check_config(self, config, log=print) -> None:
        if config.text_b_column is not None:
            log("warning: --text-b-column does not apply to --task ner; ignored")
        if config.long_texts not in TAGGER_LONG_TEXTS:
            raise ConfigError(f"--long-texts {config.long_texts}: --task ner tags every word, so it cannot skip the "
                              "middle of a sentence; use --long-texts windows (every word tagged from the window "
                              "where it has most context) or truncate (words past the window are tagged O and "
                              "counted in the data notes)")
        if config.window_pooling is not None:
            raise ConfigError(f"--window-pooling {config.window_pooling}: --task ner does not pool windows, it tags "
                              "each word from the window where it has most context; leave --window-pooling out")

    def load_data(self, config):
        from tfbert.data.tagged import load_ner_dataset
        return load_ner_dataset(config.train_file, config.valid_file, config.test_file, seed=config.seed,
                                max_train_examples=config.max_train_examples, min_sentences=config.batch_size)

    def describe(self, data) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test sentences; "
                f"{len(data.types)} entity types: {', '.join(data.types)}")

    def run_facts(self, data) -> dict:
        return {"tags": data.tags}


# --------------------------------------------------------------------------- multilabel


@dataclass(frozen=True)
class MultilabelOptions(TfliteOption):
    # Shared with classification (one --pooling flag: same help and choices). Mean by default here: on the built-in
    # data, pooled_output with plain BCE stayed at the label priors for 5 epochs (test micro-F1 0.13), while the
    # mean-pooled default encoder's frozen vectors already carry the entity types (logistic regression: 0.42).
    pooling: str = flag("mean", "pooled_output of the encoder, the [CLS] vector, or the mean over tokens",
                        choices=POOLING)
    label_separator: str | None = flag(None, "labels are one string per row split on this separator (e.g. '|'); "
                                             "default: a JSON list per row, e.g. [\"a\", \"b\"]")
    label_columns: str | None = flag(None, "comma-separated 0/1 columns, one per label (the column names are the "
                                           "labels), instead of --label-column")
    pos_weights: str = flag("balanced", "balanced: weight each label's positive examples by its negatives/positives "
                                        "ratio in train, for rare labels (without it, a fresh head learns the "
                                        "label priors first and rare labels stay below 0.5)",
                            choices=("none", "balanced"))


class MultilabelSpec(TaskSpec):
    name = "multilabel"
    description = ("multi-label classification (a set of labels per text); default data: the entity types each "
                   "tweet of the built-in Twitter NER corpus mentions")
    implementation = "tfbert.tasks.multilabel:MultilabelTask"
    # ~1.9k rows: more epochs and a higher peak rate than classification (bf16 where native, frozen word
    # embeddings); chosen from runs on the built-in data (docs/pages/tasks/multilabel.md).
    defaults = {"epochs": 10, "learning_rate": 1e-4, "patience": 4, "precision": "auto", "freeze_word_embeddings": True}
    # Micro PR-AUC (every (text, label) score ranked at once): threshold-free, so it tracks progress while a fresh
    # head still keeps every probability under 0.5 and micro-F1 at 0.5 reads 0 for epochs on rare labels (measured:
    # early stopping on val_micro_f1 kept epoch 1 of the built-in data, test micro-F1 0.13).
    monitor = "val_pr_auc"
    options = MultilabelOptions
    augments = True

    def check_config(self, config, log=print) -> None:
        check_tflite(config, pairs=False)
        if config.text_b_column is not None:
            log("warning: --text-b-column does not apply to --task multilabel; ignored")
        if not config.train_file and (config.label_separator or config.label_columns):
            log("warning: --label-separator/--label-columns apply to --train-file data; the built-in data has its "
                "own labels")

    def load_data(self, config):
        from tfbert.data.multilabel import load_multilabel_dataset
        return load_multilabel_dataset(config.train_file, config.valid_file, config.test_file,
                                       text_column=config.text_column, label_column=config.label_column,
                                       label_separator=config.label_separator, label_columns=config.label_columns,
                                       seed=config.seed, max_train_examples=config.max_train_examples,
                                       min_rows=config.batch_size)

    def describe(self, data) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test rows; "
                f"{len(data.labels)} labels: {', '.join(data.labels)}")

    def run_facts(self, data) -> dict:
        return {"labels": data.labels}


# --------------------------------------------------------------------------- regression

MONITORS = ("spearman", "pearson", "neg_rmse")


@dataclass(frozen=True)
class RegressionOptions(TfliteOption):
    pooling: str = flag("pooled", "pooled_output of the encoder, the [CLS] vector, or the mean over tokens",
                        choices=POOLING)
    loss: str = flag("mse", "training loss on the standardised labels: mse, or huber (squared within one standard "
                            "deviation of the label, linear beyond: less pull from outliers)", choices=("mse", "huber"))
    monitor: str = flag("spearman", "validation metric for early stopping and the best checkpoint (neg_rmse: minus "
                                    "the RMSE)", choices=MONITORS)


class RegressionSpec(TaskSpec):
    name = "regression"
    description = ("a numeric label per text or sentence pair (STS-style similarity); default data: the built-in "
                   "tweets' signed sentiment score")
    implementation = "tfbert.tasks.regression:RegressionTask"
    # Classification's defaults, not tuned for regression (one full run beat the baseline with them: docs/pages/tasks/regression.md).
    defaults = {"epochs": 2, "learning_rate": 5e-5, "patience": 3, "precision": "auto", "freeze_word_embeddings": True}
    monitor = "val_spearman"
    options = RegressionOptions
    augments = True

    def check_config(self, config, log=print) -> None:
        refuse_windowed_pairs(config)
        check_tflite(config)

    def monitor_of(self, config) -> str:
        return f"val_{config.monitor}"  # --monitor

    def load_data(self, config):
        from tfbert.data.regression import load_scored
        return load_scored(config.train_file, config.valid_file, config.test_file, text_column=config.text_column,
                           label_column=config.label_column, text_b_column=config.text_b_column, seed=config.seed,
                           max_train_examples=config.max_train_examples, min_rows=config.batch_size)

    def describe(self, data) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test "
                f"{'pairs' if data.has_pairs else 'rows'}; train labels mean {data.mean:.4g}, std {data.std:.4g}")

    def run_facts(self, data) -> dict:
        return {"target": {"mean": data.mean, "std": data.std}}


# --------------------------------------------------------------------------- qa


@dataclass(frozen=True)
class QaOptions:
    doc_stride: int | None = flag(None, "wordpieces two neighbouring windows of a long context share; default: "
                                        "max-seq-length // 3 (128 at 384, as BERT)")
    max_query_length: int | None = flag(None, "question wordpieces kept; default: max-seq-length // 6 (64 at 384, "
                                              "as BERT)")
    max_answer_length: int = flag(30, "longest answer in wordpieces when decoding")
    drop_mismatched: bool = flag(False, "drop (and count) answers whose text does not match the context at their "
                                        "answer_start, instead of stopping with an error")


def layout_of(config):
    """The run's tfbert.data.qa.QaLayout (checked: ConfigError naming the flag)."""
    from tfbert.data.qa import QaLayout
    n = config.max_seq_length
    layout = QaLayout(n, config.doc_stride if config.doc_stride is not None else n // 3,
                      config.max_query_length if config.max_query_length is not None else n // 6,
                      config.max_answer_length)
    layout.check()
    return layout


class QaSpec(TaskSpec):
    name = "qa"
    description = ("extractive question answering (SQuAD v1.1/v2.0 JSON or JSONL); default data: questions about "
                   "the entities of the built-in Twitter NER corpus")
    implementation = "tfbert.tasks.qa:QaTask"
    # Token heads learn faster at a higher peak rate (as NER); fp32 as NER found bf16 worse for token heads.
    defaults = {"epochs": 4, "learning_rate": 1e-4, "patience": 2, "precision": "fp32", "freeze_word_embeddings": True}
    monitor = "val_f1"
    unit = "questions"
    options = QaOptions

    def check_config(self, config, log=print) -> None:
        if config.text_b_column is not None:
            log("warning: --text-b-column does not apply to --task qa; ignored")
        if config.long_texts != "truncate":
            raise ConfigError(f"--long-texts {config.long_texts}: --task qa reads long contexts in overlapping windows "
                              "(--doc-stride) and keeps every wordpiece; leave --long-texts at truncate")
        layout_of(config)

    def load_data(self, config):
        from tfbert.data.qa import load_qa_dataset
        from tfbert.data.qa_builtin import load_builtin_dataset
        if config.train_file is None:
            if config.valid_file or config.test_file:
                raise ConfigError("--valid-file/--test-file need --train-file as well (without it, --task qa reads "
                                  "its built-in questions)")
            return load_builtin_dataset(seed=config.seed, max_train_examples=config.max_train_examples,
                                        min_questions=config.batch_size)
        return load_qa_dataset(config.train_file, config.valid_file, config.test_file, seed=config.seed,
                               drop_mismatched=config.drop_mismatched, max_train_examples=config.max_train_examples,
                               min_questions=config.batch_size)

    def describe(self, data) -> str:
        return (f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test questions; "
                f"{'with' if data.has_no_answer else 'without'} no-answer questions")

    def run_facts(self, data) -> dict:
        return {"no_answer": data.has_no_answer}


# --------------------------------------------------------------------------- mlm (python -m tfbert.pretrain)

DEFAULT_MAX_VALID = 2000


class PretrainError(ConfigError):
    """A setting or an encoder pre-training cannot use; the message names it."""


@dataclass(frozen=True)
class MlmOptions:
    mask_share: float = flag(0.15, "share of wordpieces predicted; of those 80% [MASK], 10% a random id, 10% kept")
    whole_word_masking: bool = flag(False, "choose whole words: all wordpieces of a chosen word are predicted")
    valid_share: float = flag(0.1, "without --valid-file: the share of the train documents held out")
    max_valid: int = flag(DEFAULT_MAX_VALID, "without --valid-file: at most this many held-out documents")
    max_steps: int | None = flag(None, "stop after about this many steps: epochs of at most one pass each, "
                                       "ceil(max_steps / epochs) steps long (default: --epochs full passes)")
    objectives: str = flag("auto", "mlm, mlm,nsp or mlm,sop; auto: mlm,nsp when at least half the training "
                                   "documents have two or more segments, else mlm")
    packing: str = flag("document", "none: one document per sequence, cut; document: a document's consecutive "
                                    "segments fill a sequence, never crossing documents; full (mlm only): "
                                    "consecutive documents share a sequence, a [SEP] between them")
    document_column: str | None = flag(None, "a table's document column: consecutive rows with the same value are "
                                             "one document, a row one segment (default: each text is a document, "
                                             "its sentences the segments)")


@dataclass
class TextCorpus:
    train: list[list[str]]  # documents, each its segments
    valid: list[list[str]]
    test: list[list[str]]  # the held-out documents again: the before/after figures
    notes: list[str] = field(default_factory=list)
    objective: str = "mlm"  # besides the masked LM: nsp, sop, or mlm (none)


OBJECTIVES = {"mlm": "mlm", "mlm,nsp": "nsp", "mlm,sop": "sop"}
AUTO_PAIR_SHARE = 0.5  # objectives auto: a pair objective when this share of documents has a segment boundary


def pair_objective(setting: str, documents: list[list[str]], packing: str = "document") -> tuple[str, str]:
    """--objectives -> (nsp, sop or mlm, the reason for the log). auto stays mlm under a --packing other than
    document, which pairs cannot use."""
    share = sum(len(d) > 1 for d in documents) / max(len(documents), 1)
    if setting != "auto":
        return OBJECTIVES[setting], f"--objectives {setting}; {share:.0%} of the documents have two or more segments"
    if packing != "document":
        return "mlm", f"--objectives auto: mlm, as --packing {packing} holds no pairs"
    chosen = "nsp" if share >= AUTO_PAIR_SHARE else "mlm"
    return chosen, (f"--objectives auto: {'mlm,nsp' if chosen == 'nsp' else 'mlm'}, as {share:.0%} of the training "
                    f"documents have two or more segments ({'at least' if chosen == 'nsp' else 'under'} "
                    f"{AUTO_PAIR_SHARE:.0%})")


def split_held_out(texts: list[str], share: float, limit: int, seed: int) -> tuple[list[str], list[str]]:
    import numpy as np
    if len(texts) < 2:
        raise PretrainError(f"{len(texts)} document: give at least 2 (one is held out) or a --valid-file")
    n_valid = min(max(1, round(share * len(texts))), limit, len(texts) - 1)
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]


class MlmSpec(TaskSpec):
    name = "mlm"
    description = "continued masked-LM pre-training of the encoder on unlabelled texts (python -m tfbert.pretrain)"
    implementation = "tfbert.tasks.mlm:MlmTask"
    defaults = {"epochs": 1, "learning_rate": 5e-5, "patience": 3, "precision": "fp32",
                "freeze_word_embeddings": False}
    monitor = "val_neg_mlm_loss"
    unit = "documents"
    options = MlmOptions
    serves_text = False

    def check_config(self, config, log=print) -> None:
        from tfbert.data.instances import PACKING
        checks = [(0 < config.mask_share < 1, f"--mask-share {config.mask_share}: must lie between 0 and 1"),
                  (0 < config.valid_share < 1, f"--valid-share {config.valid_share}: must lie in (0, 1)"),
                  (config.max_valid >= 1, "--max-valid must be at least 1"),
                  (config.max_steps is None or config.max_steps >= 1, "--max-steps must be at least 1"),
                  (config.long_texts == "truncate", "pre-training cuts each text to --max-seq-length: leave "
                                                    "--long-texts at truncate"),
                  (not (config.freeze_layers is not None or config.unfreeze or config.layer_lr_decay is not None
                        or config.freeze_encoder), "--freeze-encoder, --freeze-layers, --unfreeze and "
                                                   "--layer-lr-decay are for fine-tuning, not pre-training"),
                  (config.objectives in (*OBJECTIVES, "auto"), f"--objectives {config.objectives!r}: choose auto, "
                                                                f"{', '.join(OBJECTIVES)}"),
                  (config.packing in PACKING, f"--packing {config.packing!r}: choose {', '.join(PACKING)}"),
                  (config.packing == "document" or config.objectives in ("mlm", "auto"),
                   f"--packing {config.packing} with --objectives {config.objectives}: a pair is cut from one "
                   "document; use --packing document")]
        for ok, message in checks:
            if not ok:
                raise PretrainError(message)
        if config.test_file or config.text_b_column:
            log("warning: --test-file and --text-b-column do not apply to pre-training; ignored")

    def load_data(self, config) -> TextCorpus:
        from tfbert.data.texts import read_documents, sentences
        column = None if config.text_column == "text" else config.text_column  # a .txt file has no columns
        if config.train_file is None:
            from tfbert.data.tweets import load_tweets
            tweets, notes = load_tweets()
            texts = [sentences(t) for t in tweets["text"]]
            texts, notes = [d for d in texts if d], [*notes, "the built-in tweets' texts, labels unused"]
        else:
            texts, notes = read_documents(config.train_file, column, config.document_column)
        if config.valid_file:
            valid, valid_notes = read_documents(config.valid_file, column, config.document_column)
            train, notes = texts, notes + valid_notes
        else:
            train, valid = split_held_out(texts, config.valid_share, config.max_valid, config.seed)
            notes.append(f"held out {len(valid)} of the {len(texts)} documents for the before/after accuracy "
                         "(--valid-file to give your own)")
        objective, why = pair_objective(config.objectives, train, config.packing)
        return TextCorpus(train, valid, valid, [*notes, why], objective)

    def describe(self, data) -> str:
        segments = sum(len(d) for d in data.train)
        return f"{len(data.train)} train documents ({segments} segments) / {len(data.valid)} held-out documents"


# --------------------------------------------------------------------------- multitask

# The tasks a multitask model can hold: those with a head on single texts (Task.head: pooled, or per token for
# ner), so that one tokenization and one encoder pass per request feed every head.
MEMBER_TASKS = ("sentiment", "classify", "ner", "multilabel", "regression")
# What a --tasks-file member may set besides its task's options; the loop settings are the run's.
MEMBER_DATA = ("train_file", "valid_file", "test_file", "text_column", "label_column", "max_train_examples")
HEAD_NAME = r"[a-z][a-z0-9_]{0,31}"


@dataclass(frozen=True)
class MultitaskOptions:
    tasks: str = flag("sentiment,ner,multilabel", "comma-separated tasks trained together on one encoder, each on its "
                                              f"built-in data (any of {', '.join(MEMBER_TASKS)}); --tasks-file for "
                                              "your own files")
    tasks_file: str | None = flag(None, "a JSON list of the members instead of --tasks, each {\"task\": ..., "
                                        "\"name\": the head's name (default: the task), \"train_file\", "
                                        "\"valid_file\", \"test_file\", \"text_column\", \"label_column\", "
                                        "\"max_train_examples\" and the task's own options, e.g. \"pooling\"}")
    sampling_temperature: float = flag(1.0, "batches are drawn from each member in proportion to b^(1/T), b its "
                                            "budget: its batches per pass times the passes it makes alone (its "
                                            "task's epochs, raised to reach --min-steps) over the most any member "
                                            "makes. 1 = each member as often as it trains alone over the default "
                                            "epochs; larger T draws small budgets more often. An epoch is the "
                                            "budgets summed either way")


@dataclass
class Member:
    """One task of a multitask run: its head's name, spec, own settings (the run's, with its data and options and
    its task's defaults) and data."""
    name: str
    spec: TaskSpec
    config: Any
    data: Any


@dataclass
class MultitaskData:
    members: list[Member]
    source: str  # where the members came from: --tasks or the --tasks-file path

    @property
    def notes(self) -> list[str]:  # the members' notes, read when logged (their datasets add truncation notes)
        return [f"{m.name}: {note}" for m in self.members for note in m.data.notes]


def _member_source(config) -> str:
    """Where the members come from: --tasks or the --tasks-file path."""
    return f"--tasks {config.tasks}" if config.tasks_file is None else str(config.tasks_file)


def _member_entries(config) -> list[dict]:
    """The members as dicts ({"task", "name"?, data settings, options})."""
    from tfbert.config import read_json_file
    if config.tasks_file is None:
        return [{"task": t.strip()} for t in config.tasks.split(",") if t.strip()]
    path = config.tasks_file
    entries = read_json_file(path, "--tasks-file")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"--tasks-file {path}: must hold a JSON list of objects, one per task, e.g. "
                          '[{"task": "sentiment"}, {"task": "multilabel", "train_file": "tags.csv"}]')
    return entries


class MultitaskSpec(TaskSpec):
    name = "multitask"
    description = ("several tasks trained together on one encoder, one export serving them all; default: the "
                   "built-in sentiment tweets, Twitter NER and multi-label entity types (--tasks, --tasks-file)")
    implementation = "tfbert.tasks.multitask:MultitaskTask"
    # 12 epochs, ner's (the most of any member): an epoch draws each member its own epochs / 12 of a pass
    # (tfbert.tasks.multitask.member_passes), so each is trained as often as alone. One learning rate for all heads
    # and patience 5: measured on the built-in members (docs/pages/tasks/multitask.md). The members' own option
    # defaults (multilabel's mean pooling, ...) still apply to their heads.
    defaults = {"epochs": 12, "learning_rate": 1e-4, "patience": 5, "precision": "auto", "freeze_word_embeddings": True}
    # The mean of the members' monitored values (each higher-is-better), written by the multitask validation.
    monitor = "val_multitask_score"
    options = MultitaskOptions
    augments = True

    def check_config(self, config, log=print) -> None:
        given = [n for n in ("train_file", "valid_file", "test_file", "train_dir", "valid_dir", "test_dir",
                             "text_b_column") if getattr(config, n) is not None]
        given += [n for n, default in (("text_column", "text"), ("label_column", "label"))
                  if getattr(config, n) != default]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')}: --task multitask reads each member's data settings "
                              "from --tasks-file (a JSON list, e.g. [{\"task\": \"classify\", \"train_file\": "
                              "\"reviews.csv\", \"label_column\": \"stars\"}, {\"task\": \"multilabel\"}])")
        if config.long_texts == "windows":
            raise ConfigError("--long-texts windows: a multitask model reads one window per text; use truncate or "
                              "head-tail")
        if config.strategy == "multi_worker":
            raise ConfigError("--strategy multi_worker: not yet for --task multitask (its validation runs every "
                              "member's split in one callback); use mirrored or default")
        if not config.sampling_temperature > 0:
            raise ConfigError(f"--sampling-temperature must be > 0, not {config.sampling_temperature}")

    def members(self, config, log=print) -> list[tuple[str, TaskSpec, Any]]:
        """(head name, spec, settings) per member, checked; ConfigError naming the member and its source."""
        import re
        entries, source = _member_entries(config), _member_source(config)
        if len(entries) < 2:
            raise ConfigError(f"{source}: a multitask model needs at least two tasks, not {len(entries)}")
        out, seen = [], set()
        for i, entry in enumerate(entries, 1):
            task = entry.get("task")
            where = f"{source}, task {i} ({task!r})"
            if task not in MEMBER_TASKS:
                raise ConfigError(f"{where}: a multitask model holds {', '.join(MEMBER_TASKS)} (tasks with a head "
                                  "on single texts)")
            member = CATALOG[task]()
            name = entry.get("name", task)
            if not isinstance(name, str) or not re.fullmatch(HEAD_NAME, name):
                raise ConfigError(f"{where}: name {name!r} must match {HEAD_NAME} (it names the head's signature, "
                                  "serving_<name>)")
            if name in seen:
                raise ConfigError(f"{where}: the head name {name!r} is taken; give each task a distinct \"name\"")
            seen.add(name)
            known = {f.name for f in fields(member.options)} if member.options else set()
            unknown = sorted(set(entry) - {"task", "name", *MEMBER_DATA, *known})
            if unknown:
                raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; a member sets {', '.join(MEMBER_DATA)} "
                                  f"and its task's options ({', '.join(sorted(known))})")
            options = {k: v for k, v in entry.items() if k in known}
            data = {k: entry[k] for k in MEMBER_DATA if k in entry}
            member_config = config.replace(task=task, options=options, **data).with_task_defaults(member, log)
            try:
                member_config.check()
                member_config.check_task(member)
                member.check_config(member_config, log)
                if getattr(member_config, "teacher", None) is not None or getattr(member_config, "calibrate", False) \
                        or getattr(member_config, "tune_threshold", "none") != "none" \
                        or getattr(member_config, "tflite", False):
                    raise ConfigError("--teacher, --calibrate, --tune-threshold and --tflite are not yet for multitask "
                                      "heads")
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
            out.append((name, member, member_config))
        return out

    def load_data(self, config) -> MultitaskData:
        members = [Member(name, member, member_config, member.load_data(member_config))
                   for name, member, member_config in self.members(config, log=lambda *_: None)]
        return MultitaskData(members, _member_source(config))

    def describe(self, data: MultitaskData) -> str:
        return "; ".join(f"{m.name} ({m.spec.name}): {m.spec.describe(m.data)}" for m in data.members)

    def run_facts(self, data: MultitaskData) -> dict:
        from tfbert.run_folder import data_fingerprint
        return {"heads": {m.name: {"task": m.spec.name, **m.spec.run_facts(m.data),
                                   "data": data_fingerprint(m.config.to_dict())} for m in data.members}}

    def rows(self, data: MultitaskData, split: str) -> int:
        return sum(m.spec.rows(m.data, split) for m in data.members)


# The tasks of `python -m tfbert.train --task`: each exports a model that serves text.
CATALOG: dict[str, type[TaskSpec]] = {cls.name: cls for cls in (SentimentSpec, ClassificationSpec, NerSpec,
                                                                MultilabelSpec, RegressionSpec, QaSpec,
                                                                MultitaskSpec)}
"""Name -> spec of the tasks of `python -m tfbert.train --task`; tfbert.tasks.TASKS maps them to their
implementations."""
# Every task the loop runs: also pre-training (`python -m tfbert.pretrain`), whose export is an encoder pair.
LOOP_CATALOG: dict[str, type[TaskSpec]] = {**CATALOG, MlmSpec.name: MlmSpec}
"""Name -> spec of every task the loop runs: CATALOG's (those of `tfbert.train --task`) and pre-training's."""
register_options(cls.options for cls in LOOP_CATALOG.values() if cls.options)


def spec(name: str) -> TaskSpec:
    """The spec of a loop task, to check settings and read data before TensorFlow loads."""
    if name not in LOOP_CATALOG:
        from tfbert.config import did_you_mean
        raise ConfigError(f"unknown task {name!r}{did_you_mean(name, LOOP_CATALOG)}; the tasks are {', '.join(CATALOG)} "
                          "(and mlm, python -m tfbert.pretrain)")
    return LOOP_CATALOG[name]()
