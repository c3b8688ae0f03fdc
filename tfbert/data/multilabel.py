"""Multi-label data: texts with a set of labels each (possibly empty), read, validated and split.

pandas only (no TensorFlow), like tfbert/data/classification.py. Three ways to give the label sets:

* one column holding a JSON list per row: ``["sports", "politics"]`` (``[]`` or an empty cell: no label);
  in JSONL/Parquet files the cell may be a real list;
* one column of delimiter-separated labels with ``label_separator`` (``sports|politics``; empty: no label);
* several 0/1 columns, one per label, with ``label_columns`` (``sports,politics``: the columns are the labels).

A row without any label is a valid "none of these" example (counted in the notes). Without a file the data are
the built-in Twitter NER corpus (tfbert.data.tagged.load_builtin) read as multi-label classification: the text is
the tweet's tokens joined by spaces, its labels the set of entity types it mentions.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tfbert.data.tables import (
    ROW_COL,
    DataError,
    drop_empty_texts,
    is_na,
    joined_text,
    read_table,
    require_columns,
    row_refs,
    source_name,
)
from tfbert.data.tagged import BUILTIN_PACKAGE, builtin_path, entity_types, load_builtin

__all__ = ["MultilabelDataset", "load_multilabel_dataset", "multi_hot", "read_label_sets", "split_rows", "builtin_rows",
           "parse_label_columns", "TRUE_VALUES", "FALSE_VALUES"]

TRUE_VALUES = ("1", "1.0", "true", "yes")
FALSE_VALUES = ("0", "0.0", "false", "no", "")
_MAX_LISTED = 5


@dataclass
class MultilabelDataset:
    """Validated, split data. Each split has columns ``text`` and ``labels`` (a sorted list of label names, maybe
    empty); ``labels`` are the model's outputs in order."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]
    notes: list[str] = field(default_factory=list)

    def targets(self, split: pd.DataFrame) -> np.ndarray:
        """float32 [rows, labels] multi-hot matrix of a split."""
        return multi_hot(split["labels"], self.labels)


def multi_hot(label_sets, labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), np.float32)
    for row, names in enumerate(label_sets):
        for name in names:
            out[row, index[name]] = 1.0
    return out


def parse_label_columns(value: str | None) -> list[str] | None:
    """'a, b,c' -> ['a', 'b', 'c'] (None stays None); duplicates and empty names are refused."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise DataError(f"--label-columns {value!r}: expected distinct column names separated by commas, e.g. "
                        "--label-columns sports,politics,science.")
    return names


# --------------------------------------------------------------------------- label cells


def _cell_labels(value, separator: str | None) -> list[str]:
    """One label cell -> its label names (sorted, deduplicated); raises ValueError saying what is wrong."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    elif is_na(value):
        return []
    else:
        text = str(value).strip()
        if not text:
            return []
        if separator is not None:
            return sorted({part.strip() for part in text.split(separator) if part.strip()})
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON list ({e.msg} at character {e.pos + 1})") from None
        if not isinstance(items, list):
            raise ValueError(f"a JSON {type(items).__name__}, not a list")
    names = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
            raise ValueError(f"list item {item!r} is not a label name (labels are non-empty strings)")
        names.add(str(item).strip())
    return sorted(names)


def read_label_sets(df: pd.DataFrame, path, lines_before, *, label_column: str = "label",
                    label_separator: str | None = None, label_columns: list[str] | None = None) -> pd.Series:
    """The label set of every row of a table (a Series of sorted lists), from one list column or 0/1 columns.
    A malformed cell raises DataError naming the file, the row and the value."""
    source = source_name(path)
    if label_columns is not None:
        for column in label_columns:
            require_columns(df, source, {"label_columns": column})
        sets = [[] for _ in range(len(df))]
        for column in label_columns:
            values = df[column].map(lambda v: "" if is_na(v) else str(v).strip().lower())
            bad = ~values.isin(TRUE_VALUES + FALSE_VALUES)
            if bad.any():
                rows = np.flatnonzero(bad.to_numpy()) + 1
                raise DataError(f"{source}: label column {column!r} (--label-columns) holds "
                                f"{df[column][bad].iloc[0]!r} in {row_refs(rows, lines_before)}; a label column "
                                f"must hold 0 or 1 (also true/false, empty = 0).")
            for row in np.flatnonzero(values.isin(TRUE_VALUES).to_numpy()):
                sets[row].append(column)
        return pd.Series([sorted(s) for s in sets], index=df.index, dtype=object)
    require_columns(df, source, {"label_column": label_column})
    out = []
    for row, value in enumerate(df[label_column].tolist(), 1):
        try:
            out.append(_cell_labels(value, label_separator))
        except ValueError as e:
            shown = value if isinstance(value, str) else repr(value)
            raise DataError(f"{source}: label column {label_column!r}, {row_refs([row], lines_before)}: {shown[:80]!r} "
                            f"is {e}. Write each row's labels as a JSON list, e.g. [\"sports\", \"politics\"] ([] for "
                            "none), or pass --label-separator for delimiter-separated labels (sports|politics), or "
                            "--label-columns for one 0/1 column per label.") from None
    return pd.Series(out, index=df.index, dtype=object)


def _clean(df: pd.DataFrame, path, lines_before, text_column: str, label_options: dict, notes: list[str]):
    """text, labels, ROW_COL of one file; rows with empty text dropped (noted)."""
    source = source_name(path)
    out = pd.DataFrame({"text": joined_text(df, text_column, source)}, index=df.index)
    out["labels"] = read_label_sets(df, path, lines_before, **label_options)
    out[ROW_COL] = np.arange(1, len(df) + 1)
    out = drop_empty_texts(out, {"text": text_column}, path, lines_before, notes, file_columns=df.columns)
    return out


# --------------------------------------------------------------------------- built-in data and splits


def builtin_rows() -> pd.DataFrame:
    """The built-in Twitter NER corpus as multi-label rows: text = tokens joined by spaces, labels = the sorted
    set of entity types the tweet mentions (empty for most tweets). Row order is the corpus order."""
    sentences = load_builtin()
    return pd.DataFrame({"text": [" ".join(s.tokens) for s in sentences],
                         "labels": [entity_types(s.tags) for s in sentences],
                         ROW_COL: np.arange(1, len(sentences) + 1)})


def split_rows(df: pd.DataFrame, valid_fraction: float, test_fraction: float, seed: int):
    """Seeded shuffle, then (rest, valid, test): the NER corpus' split (tfbert.data.tagged), so that on the
    built-in data the test tweets are those of `--task ner`."""
    order = list(range(len(df)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = (max(1, round(f * len(order))) if f > 0 else 0 for f in (valid_fraction, test_fraction))
    picked = df.iloc[order]
    return picked.iloc[n_valid + n_test:], picked.iloc[:n_valid], picked.iloc[n_valid:n_valid + n_test]


def _known(split: pd.DataFrame, labels) -> pd.Series:
    known = set(labels)
    return split["labels"].map(lambda names: set(names) <= known).astype(bool)


# --------------------------------------------------------------------------- main entry point


def load_multilabel_dataset(train_file=None, valid_file=None, test_file=None, *, text_column: str = "text",
                            label_column: str = "label", label_separator: str | None = None,
                            label_columns: str | list[str] | None = None, seed: int = 0, valid_fraction: float = 0.1,
                            test_fraction: float = 0.1, max_train_examples: int | None = None,
                            min_rows: int = 1) -> MultilabelDataset:
    """Read, validate and split multi-label data (default: the built-in corpus; column options then ignored).

    Missing valid/test files are split off the train data (seeded shuffle, 80/10/10 by default); rows of a split-off
    part whose labels never occur in the rest are moved back to train (noted). A label in a valid/test *file* that
    the train data never has is refused, with its rows. With ``label_columns`` every column is a label, even one
    without a positive row in train (noted)."""
    if isinstance(label_columns, str):
        label_columns = parse_label_columns(label_columns)
    if label_separator is not None and label_columns is not None:
        raise DataError("--label-separator and --label-columns exclude each other: labels are either one column "
                        "of separated names or one 0/1 column per label.")
    if label_separator == "":
        raise DataError("--label-separator must not be empty (e.g. '|' or ';').")
    notes: list[str] = []
    if train_file is None:
        if valid_file is not None or test_file is not None:
            raise DataError("valid_file/test_file were given without train_file; pass train_file as well.")
        frames = {"train": builtin_rows()}
        label_columns = None
        notes.append(f"Built-in corpus: the Twitter NER corpus of the {BUILTIN_PACKAGE} package ({builtin_path().name},"
                     f" {len(frames['train'])} tweets) as multi-label data: labels = the entity types a tweet "
                     "mentions.")
        sources = {"train": (None, None)}
    else:
        label_options = {"label_column": label_column, "label_separator": label_separator,
                         "label_columns": label_columns}
        if label_columns is None and text_column == label_column:
            raise DataError(f"text_column and label_column are both {text_column!r}; they must differ.")
        frames, sources = {}, {}
        for split, path in (("train", train_file), ("valid", valid_file), ("test", test_file)):
            if path is not None:
                df = read_table(path)
                notes.extend(df.attrs.get("notes", []))
                lines_before = df.attrs.get("lines_before_data")
                frames[split] = _clean(df, path, lines_before, text_column, label_options, notes)
                sources[split] = (path, lines_before)

    train_labels = sorted({n for names in frames["train"]["labels"] for n in names})
    labels = list(label_columns) if label_columns is not None else train_labels
    if not train_labels:
        raise DataError(f"{source_name(sources['train'][0])}: no row of the train data has a label; multi-label "
                        f"classification needs labelled rows. Check --label-column / --label-columns.")

    missing = [s for s in ("valid", "test") if s not in frames]
    if missing:
        n = len(frames["train"])
        rest, valid, test = split_rows(frames["train"], valid_fraction if "valid" in missing else 0,
                                       test_fraction if "test" in missing else 0, seed)
        rest_labels = {x for names in rest["labels"] for x in names}
        for name, part in (("valid", valid), ("test", test)):
            if name in missing:
                back = ~_known(part, rest_labels)
                if back.any():
                    notes.append(f"Moved {int(back.sum())} split-off {name} rows back to train: their labels "
                                 "occur in no other train row.")
                    rest = pd.concat([rest, part[back]])
                frames[name] = part[~back]
        frames["train"] = rest
        notes.append(f"Split {n} rows (seed {seed}) into train {len(rest)}, valid {len(frames['valid'])}, "
                     f"test {len(frames['test'])}.")
    for split in ("valid", "test"):
        if split in sources:
            _refuse_unseen(frames[split], split, sources[split], sources["train"][0],
                           train_labels if label_columns is None else labels)
    if max_train_examples is not None and len(frames["train"]) > max_train_examples:
        frames["train"] = frames["train"].sample(max_train_examples, random_state=seed)
        notes.append(f"Subsampled train to {max_train_examples} rows (--max-train-examples).")
    if len(frames["train"]) < min_rows:
        raise DataError(f"{source_name(sources['train'][0])}: only {len(frames['train'])} train rows after cleaning "
                        f"and splitting, fewer than {min_rows} (one batch, --batch-size). Add data or lower the "
                        "batch size.")

    finished = {s: frames[s].drop(columns=[ROW_COL]).reset_index(drop=True) for s in ("train", "valid", "test")}
    data = MultilabelDataset(finished["train"], finished["valid"], finished["test"], labels, notes)
    for split, df in finished.items():
        empty = int(df["labels"].map(len).eq(0).sum())
        notes.append(f"{split}: {len(df)} rows, {empty} of them with no label (\"none of these\" examples).")
    counts = data.targets(data.train).sum(0).astype(int)
    notes.append(f"{len(labels)} labels; train rows per label: "
                 + ", ".join(f"{name} {c}" for name, c in zip(labels, counts)) + ".")
    absent = [name for name, c in zip(labels, counts) if c == 0]
    if absent:
        notes.append(f"Labels without a positive train row (the model cannot learn them): {', '.join(absent)}.")
    return data


def _refuse_unseen(df: pd.DataFrame, split: str, source, train_path, labels: list[str]) -> None:
    path, lines_before = source
    bad = ~_known(df, labels)
    if bad.any():
        unseen = sorted({n for names in df.loc[bad, "labels"] for n in names} - set(labels))
        raise DataError(
            f"{source_name(path)}: {split} labels not seen in the train data ({source_name(train_path)}): "
            f"{', '.join(map(repr, unseen[:20]))} ({int(bad.sum())} rows: "
            f"{row_refs(df.loc[bad, ROW_COL], lines_before)}). Train labels are "
            f"{', '.join(map(repr, labels[:20]))}. Fix the labels, remove those rows, or add examples of these "
            "labels to the train file.")
