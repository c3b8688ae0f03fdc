"""Classification data: read, validate and split labelled texts (single or pairs) into a TextDataset.

pandas/scikit-learn only. ``load_dataset`` reads user files (or the built-in tweets), checks columns, empty texts
and labels, splits off what was not given as a file (stratified, seeded) and describes every step in ``notes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tfbert.data.folders import read_folder
from tfbert.data.tables import (
    ROW_COL,
    DataError,
    column_names,
    drop_empty_texts,
    is_missing_label,
    joined_text,
    normalize_labels,
    read_table,
    require_columns,
    row_refs,
    source_name,
)
from tfbert.data.tweets import load_tweets

__all__ = ["TextDataset", "load_dataset", "class_weights", "weighting"]

_MAX_LISTED = 5  # how many row numbers / values to quote in a message


@dataclass
class TextDataset:
    """Validated, split data ready for the tf.data pipeline.

    Each split has columns ``text``, [``text_b``], ``label`` (str) and ``label_id`` (int);
    ``labels[label_id]`` is the label name.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]
    has_pairs: bool
    notes: list[str] = field(default_factory=list)


def _sort_labels(labels, int_like: bool) -> list[str]:
    return sorted(set(labels), key=int) if int_like else sorted(set(labels))


# --------------------------------------------------------------------------- splitting


def _split_off(df: pd.DataFrame, n_out: int, seed: int, what: str, notes: list[str], rescue: bool = True):
    """Split ``n_out`` rows off ``df`` (stratified by label when possible); return (kept, out).

    With ``rescue``, classes that would vanish from the kept part (possible only after
    the unstratified fallback) are moved back, so every label keeps train examples.
    """
    from sklearn.model_selection import train_test_split  # imported lazily: sklearn import is slow

    if n_out <= 0:
        return df, df.iloc[:0]
    if n_out >= len(df):
        raise DataError(
            f"Not enough rows to split off {what}: {len(df)} rows available, {n_out} requested. "
            f"Add data, lower the split fractions, or pass separate valid/test files."
        )
    try:
        kept, out = train_test_split(df, test_size=n_out, random_state=seed, stratify=df["label"])
    except ValueError as e:
        # sklearn refuses to stratify when a class has < 2 rows or a part is smaller than the class count.
        counts = df["label"].value_counts()
        small = counts[counts < 2].index.tolist()
        why = f"classes with a single row: {', '.join(map(repr, small[:_MAX_LISTED]))}" if small else str(e)
        notes.append(f"Could not stratify the {what} split ({why}); used a random (unstratified) split instead.")
        kept, out = train_test_split(df, test_size=n_out, random_state=seed, shuffle=True)
    if rescue:
        missing = sorted(set(out["label"]) - set(kept["label"]))
        if missing:
            back = out["label"].isin(missing)
            notes.append(
                f"Moved {int(back.sum())} {what} rows of classes {', '.join(map(repr, missing))} back to train "
                f"so that every class has training examples."
            )
            kept, out = pd.concat([kept, out[back]]), out[~back]
    return kept, out


def _top_up_valid(train: pd.DataFrame, valid: pd.DataFrame, floor: int, seed: int, notes: list[str]):
    """Moves training rows into the validation split until every class has `floor` rows there, taking at most a
    third of a class's rows: a small split with a handful of a class makes macro-F1, the early-stopping metric,
    jump with one or two texts."""
    moved, rng = {}, np.random.default_rng(seed)
    for label, n_valid in valid["label"].value_counts().reindex(train["label"].unique(), fill_value=0).items():
        pool = train.index[train["label"] == label]
        want = min(floor, (len(pool) + n_valid) // 3) - n_valid
        if want > 0:
            moved[label] = rng.choice(pool, size=want, replace=False)
    if not moved:
        return train, valid
    take = np.concatenate(list(moved.values()))
    notes.append("Moved training rows to the validation split so that each class has up to "
                 f"{floor} there (--valid-min-per-class): " + ", ".join(f"{lab} +{len(i)}" for lab, i in moved.items())
                 + ".")
    return train.drop(index=take), pd.concat([valid, train.loc[take]])


def _n_for(fraction: float, n: int) -> int:
    return max(1, int(round(fraction * n))) if fraction > 0 else 0


# --------------------------------------------------------------------------- main entry point


def load_dataset(
    train_file=None,
    valid_file=None,
    test_file=None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_b_column: str | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_train_examples: int | None = None,
    valid_min_per_class: int = 0,
    min_rows: int = 1,
    train_dir=None,
    valid_dir=None,
    test_dir=None,
) -> TextDataset:
    """Read, validate and split classification data.

    ``train_file=None`` (and no ``train_dir``) uses the built-in tweets corpus (column options are ignored). A
    ``*_dir`` is a folder of class folders of .txt files (tfbert.data.folders), read instead of that split's file.
    ``text_column`` may name several columns ("title,body"): their texts are joined (tables.TEXT_JOINER).
    Missing valid/test files are split off the train data, stratified by label and
    seeded; ``valid_min_per_class`` then moves training rows to the validation split until every class has that many there
    (at most a third of a class). ``max_train_examples`` subsamples train only. Raises :class:`DataError`
    with a fix-it message for any data problem; everything done to the data is
    described in ``TextDataset.notes``.
    """
    for name, frac in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= frac < 1:
            raise DataError(f"{name}={frac} must be in [0, 1).")
    if valid_fraction + test_fraction >= 1:
        raise DataError(f"valid_fraction + test_fraction = {valid_fraction + test_fraction} must be below 1.")
    if max_train_examples is not None and max_train_examples < 1:
        raise DataError(f"max_train_examples={max_train_examples} must be a positive integer or None.")

    notes: list[str] = []
    given = {"train": (train_file, train_dir), "valid": (valid_file, valid_dir), "test": (test_file, test_dir)}
    for split, (file, folder) in given.items():
        if file is not None and folder is not None:
            raise DataError(f"--{split}-file {file} and --{split}-dir {folder} were both given; pass one of them.")
    if train_file is None and train_dir is None:
        if any(file is not None or folder is not None for file, folder in (given["valid"], given["test"])):
            raise DataError("valid/test data were given without train_file or train_dir; pass one of them "
                            "(--train-file, --train-dir) as well.")
        text_column, label_column, text_b_column = "text", "label", None
    elif text_column in column_names(label_column) or label_column in column_names(text_column):
        raise DataError(f"text_column {text_column!r} and label_column {label_column!r} name the same column; they "
                        "must differ.")
    folders = {split: folder for split, (_, folder) in given.items() if folder is not None}
    if folders and text_b_column is not None:
        raise DataError(f"--text-b-column {text_b_column!r}: folder data ({', '.join(map(str, folders.values()))}) "
                        "holds single texts; sentence pairs need tables (--train-file).")
    sources = _read_sources({split: file for split, (file, _) in given.items()}, folders, notes)
    columns = {"text_column": text_column, "label_column": label_column}
    if text_b_column is not None:
        columns["text_b_column"] = text_b_column
    frames, int_like = {}, True
    for split, (path, df, lines_before) in sources.items():
        # A folder's table has the columns text and label whatever the column flags (which are for the tables).
        split_columns = {"text_column": "text", "label_column": "label"} if split in folders else columns
        frames[split], split_int_like = _clean_split(df, path, lines_before, split_columns, notes)
        int_like &= split_int_like

    train_path = sources["train"][0]
    classes = frames["train"]["label"].unique()
    if len(classes) < 2:
        raise DataError(
            f"{source_name(train_path)}: label column {label_column!r} has a single class ({classes[0]!r}) "
            f"in {len(frames['train'])} rows; classification needs at least two classes. Check --label-column."
        )
    labels = _sort_labels(classes, int_like)

    # Split off what was not given as a file; sizes are relative to the train data.
    n = len(frames["train"])
    if "test" not in frames:
        frames["train"], frames["test"] = _split_off(frames["train"], _n_for(test_fraction, n), seed, "test", notes)
    if "valid" not in frames:
        frames["train"], frames["valid"] = _split_off(frames["train"], _n_for(valid_fraction, n), seed, "valid", notes)
        if valid_min_per_class > 0:
            frames["train"], frames["valid"] = _top_up_valid(frames["train"], frames["valid"], valid_min_per_class,
                                                             seed, notes)
    for split in ("valid", "test"):
        if split in folders:
            _refuse_unseen_classes(frames[split], folders[split], train_path, labels)
        elif split in sources:
            _refuse_unseen_labels(frames[split], split, sources[split], train_path, labels)
    if max_train_examples is not None and len(frames["train"]) > max_train_examples:
        frames["train"] = _subsample(frames["train"], max_train_examples, labels, seed, notes)
    if len(frames["train"]) < min_rows:
        raise DataError(
            f"{source_name(train_path)}: only {len(frames['train'])} train rows after cleaning and splitting, fewer "
            f"than {min_rows} (one batch, --batch-size). Add data, lower --batch-size, or give --valid-file and "
            "--test-file (else 10% each is split off the train file)."
        )

    label_to_id = {lab: i for i, lab in enumerate(labels)}

    def finish(df: pd.DataFrame) -> pd.DataFrame:
        df = df.drop(columns=[ROW_COL]).reset_index(drop=True)
        df["label_id"] = df["label"].map(label_to_id).astype("int64")
        return df

    ds = TextDataset(*(finish(frames[s]) for s in ("train", "valid", "test")), labels=labels,
                     has_pairs=text_b_column is not None, notes=notes)
    notes.append(
        f"Split sizes: train {len(ds.train)}, valid {len(ds.valid)}, test {len(ds.test)}; "
        f"{len(labels)} classes: {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}."
    )
    counts = ds.train["label"].value_counts()
    notes.append("Train class counts: " + ", ".join(f"{lab} {int(counts.get(lab, 0))}" for lab in labels[:20]) + ".")
    return ds


def _read_sources(files: dict, folders: dict, notes: list[str]) -> dict:
    """split -> (path or None for the built-in corpus, raw DataFrame, lines before the first data row)."""
    if files["train"] is None and "train" not in folders:
        tweets, tweet_notes = load_tweets()
        notes += tweet_notes
        return {"train": (None, tweets, None)}
    sources = {}
    for split in ("train", "valid", "test"):
        path = folders.get(split, files[split])
        if path is not None:
            # A valid/test folder may lack classes, as a valid/test file may.
            df = read_folder(path, min_classes=2 if split == "train" else 1) if split in folders else read_table(path)
            notes += df.attrs.get("notes", [])
            sources[split] = (path, df, df.attrs.get("lines_before_data"))
    return sources


def read_labelled_table(path, *, text_column: str = "text", label_column: str = "label",
                        text_b_column: str | None = None, notes: list[str]) -> pd.DataFrame:
    """A labelled table read and cleaned as training reads its files (the one test-file reader of classification,
    also `python -m tfbert.evaluate`'s): text[, text_b], label (normalised names) and ROW_COL, with its
    "lines_before_data" in attrs; empty texts dropped and counted in `notes`, empty labels refused."""
    df = read_table(path)
    notes += df.attrs.get("notes", [])
    columns = {"text_column": text_column, "label_column": label_column,
               **({"text_b_column": text_b_column} if text_b_column is not None else {})}
    rows, _ = _clean_split(df, path, df.attrs.get("lines_before_data"), columns, notes)
    rows.attrs["lines_before_data"] = df.attrs.get("lines_before_data")
    return rows


def _clean_split(df: pd.DataFrame, path, lines_before, columns: dict, notes: list[str]) -> tuple[pd.DataFrame, bool]:
    """One file's rows as text[, text_b], label, ROW_COL: empty texts dropped (counted), empty labels refused.
    Returns the rows and whether every label is an integer."""
    text_column, label_column = columns["text_column"], columns["label_column"]
    text_b_column = columns.get("text_b_column")
    out = pd.DataFrame({"text": joined_text(df, text_column, source_name(path))}, index=df.index)
    if text_b_column is not None:
        out["text_b"] = joined_text(df, text_b_column, source_name(path), "text_b_column")
    require_columns(df, source_name(path), {"label_column": label_column})
    out["label"] = df[label_column]
    out[ROW_COL] = np.arange(1, len(df) + 1)  # df has a fresh RangeIndex: row i is data row i + 1

    texts = {"text": text_column, **({"text_b": text_b_column} if text_b_column is not None else {})}
    out = drop_empty_texts(out, texts, path, lines_before, notes, file_columns=df.columns)

    missing = out["label"].map(is_missing_label).astype(bool)
    if missing.any():
        raise DataError(
            f"{source_name(path)}: label column {label_column!r} is empty in {int(missing.sum())} of {len(out)} rows: "
            f"{row_refs(out.loc[missing, ROW_COL], lines_before)}. Fill in the labels or remove those rows."
        )
    out["label"], int_like = normalize_labels(out["label"], path, label_column)
    return out, int_like


def _refuse_unseen_labels(df: pd.DataFrame, split: str, source, train_path, labels: list[str]) -> None:
    path, _, lines_before = source
    unseen = sorted(set(df["label"]) - set(labels))
    if unseen:
        bad = df["label"].isin(unseen)
        raise DataError(
            f"{source_name(path)}: {split} labels not seen in the train data ({source_name(train_path)}): "
            f"{', '.join(map(repr, unseen[:20]))} ({int(bad.sum())} rows: {row_refs(df.loc[bad, ROW_COL], lines_before)}). "
            f"Train labels are {', '.join(map(repr, labels[:20]))}. Fix the labels, remove those rows, "
            f"or add examples of these classes to the train file."
        )


def _refuse_unseen_classes(df: pd.DataFrame, folder, train_path, labels: list[str]) -> None:
    unseen = sorted(set(df["label"]) - set(labels))
    if unseen:
        raise DataError(f"{folder}: class folders not in the train data ({train_path}): "
                        f"{', '.join(map(repr, unseen[:20]))}. Train classes are {', '.join(map(repr, labels[:20]))}. "
                        "Rename or remove those folders, or add them to the train folder.")


def _subsample(train: pd.DataFrame, size: int, labels: list[str], seed: int, notes: list[str]) -> pd.DataFrame:
    before = len(train)
    train, _ = _split_off(train, before - size, seed, "max_train_examples subsample", notes, rescue=False)
    notes.append(f"Subsampled train from {before} to {len(train)} rows (max_train_examples, stratified).")
    absent = sorted(set(labels) - set(train["label"]), key=labels.index)
    if absent:
        notes.append(f"After subsampling, train has no examples of: {', '.join(map(repr, absent))}.")
    return train


# --class-weights auto weights the loss when the largest training class has more than this many times the rows of the
# smallest: on the small-data panel (docs/pages/guides/small-data.md) weighting helped the sets at 6:1 and more and
# cost the 2.4:1 tweets.
AUTO_BALANCE_SKEW = 4.0


def weighting(train: pd.DataFrame, mode: str) -> tuple[str, str]:
    """The loss weighting a run uses, "none" or "balanced", and why: ``mode`` is --class-weights (auto decides by the
    skew of ``train``'s label_id counts)."""
    if mode != "auto":
        return mode, f"--class-weights {mode}"
    counts = train["label_id"].value_counts()
    skew = counts.max() / counts.min()
    chosen = "balanced" if skew > AUTO_BALANCE_SKEW else "none"
    return chosen, (f"--class-weights auto: the largest class has {skew:.1f}x the rows of the smallest "
                    f"({'more' if chosen == 'balanced' else 'not more'} than {AUTO_BALANCE_SKEW:g}x)")


def class_weights(train: pd.DataFrame, n_classes: int) -> dict[int, float]:
    """Balanced class weights {label_id: weight} (sklearn ``compute_class_weight("balanced")``).

    Classes absent from ``train`` get weight 1.0 (they never occur, so it is unused).
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = train["label_id"].to_numpy()
    present = np.unique(y)
    w = compute_class_weight("balanced", classes=present, y=y)
    weights = {i: 1.0 for i in range(n_classes)}
    weights.update({int(c): float(x) for c, x in zip(present, w)})
    return weights
