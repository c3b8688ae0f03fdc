"""Reading user data tables and the checks every table-based task shares.

pandas only (no TensorFlow), so that data problems surface quickly, before a model is built, with messages that
say which file, column, row or value is at fault and how to fix it.

* :func:`read_table` - read .csv/.tsv/.jsonl/.json/.parquet into a DataFrame.
* row references, column checks, text and label normalisation shared by the task readers and the CLIs.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataError", "read_table", "SUPPORTED_EXTENSIONS", "row_refs", "require_columns", "as_text",
           "is_missing_label", "normalize_labels", "source_name", "ROW_COL", "TEXT_JOINER", "column_names", "drop_empty_texts", "read_utf8",
           "joined_text"]

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet")

# Joins the columns of `--text-column title,body` into one text: a visible boundary the tokenizer keeps ("|" is a
# token of its own), where a bare space would run a title into its body.
TEXT_JOINER = " | "

# More distinct non-integer numbers than this in a label column means the user
# most likely has a regression target (--task regression), not classes.
MAX_FLOAT_CLASSES = 20

_REPLACEMENT_CHAR = "\ufffd"
ROW_COL = "_data_row"  # internal: 1-based data row number in the source file
_MAX_LISTED = 5  # how many row numbers / values to quote in a message


class DataError(ValueError):
    """Bad user data. The message names the file, column, row or value at fault and says how to fix it."""


# --------------------------------------------------------------------------- reading


# Leading bytes of binary formats that turn up under a text file's name (a download, a copied wrong file).
_MAGIC = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive (or .xlsx/.docx)", b"\x7fELF": "an ELF binary",
          b"\x89PNG": "a PNG image", b"%PDF": "a PDF document", b"BZh": "bzip2-compressed",
          b"\xfd7zXZ": "xz-compressed", b"PAR1": "Parquet", b"\xff\xd8\xff": "a JPEG image"}


def refuse_binary(raw: bytes, path) -> None:
    """A text file (.csv, .tsv, .jsonl, .json, CoNLL, plain text) whose content is a binary format: DataError
    naming the format, instead of a parser's message about quoting."""
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            hint = " Rename it to .parquet." if magic == b"PAR1" else " Decompress or convert it to a text table first."
            raise DataError(f"{path}: the file is {what}, not {Path(path).suffix or 'text'} text.{hint}")


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

    if ext != ".parquet":
        refuse_binary(raw, path)
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
        df, header_lines = _parse_text(text, ext, path)
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


# What a line of a JSON lines table holds (read_table's messages).
TABLE_ROW_EXAMPLE = '{"text": "...", "label": "..."}'


def _parse_text(text: str, ext: str, path: Path) -> tuple[pd.DataFrame, int | None]:
    """Parse a CSV/TSV/JSON(L) file's text; returns the rows and the number of lines before the first data row
    (None where file lines are not rows: a JSON array)."""
    try:
        if ext in (".csv", ".tsv", ".tab"):
            # dtype=str + keep_default_na=False: the text "NA" or "None" stays text and
            # "007" keeps its zeros. The C parser keeps bare \r inside quoted fields. A blank or whitespace-only
            # line is a row of empty cells, not skipped: in a one-column file it is an empty text, and predict's
            # output rows must line up with the input's (the readers of training data drop it with a note).
            df = pd.read_csv(io.StringIO(text.rstrip("\r\n")), sep="," if ext == ".csv" else "\t", dtype=str,
                             keep_default_na=False, skip_blank_lines=False)
            return df, 1
        if ext in (".jsonl", ".ndjson"):
            return pd.read_json(io.StringIO(text), lines=True, dtype=False), 0
        try:  # .json: an array of records, or JSON lines despite the extension
            return pd.read_json(io.StringIO(text), dtype=False), None
        except ValueError:
            return pd.read_json(io.StringIO(text), lines=True, dtype=False), 0
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: file has no columns ({e}); it needs a header row and data rows.") from e
    except Exception as e:
        if ext not in (".csv", ".tsv", ".tab"):
            _raise_bad_json_line(text, path, e)
        kind = "CSV" if ext == ".csv" else "TSV" if ext in (".tsv", ".tab") else "JSON"
        raise DataError(
            f"{path}: cannot parse as {kind}: {e}. Check the quoting/format near the position mentioned."
        ) from e


def _raise_bad_json_line(text: str, path: Path, error: Exception) -> None:
    """For JSON lines pandas could not read: a DataError naming the first line that is not a JSON object, if any."""
    if text.lstrip().startswith("["):
        return  # a JSON array: pandas' own message
    for number, value in json_lines(text, path, TABLE_ROW_EXAMPLE):
        if not isinstance(value, dict):
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
            raise DataError(f"{path}: line {number}: a JSON {kind}, not an object; each line must be one object "
                            f"like {TABLE_ROW_EXAMPLE}.") from error


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


# --------------------------------------------------------------------------- validation helpers


def read_utf8(path: Path) -> str:
    """A whole file that must be UTF-8 (a BOM is dropped): not found or not UTF-8 is a DataError naming the file
    and the first bad line (CoNLL, JSON and JSONL are structured: a replaced byte could corrupt a tag or an offset)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (relative paths are resolved from {Path.cwd()}).")
    raw = path.read_bytes()
    refuse_binary(raw, path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes().count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8 ({e.reason}); re-save the file as UTF-8.") from e


def json_lines(text: str, path: Path, example: str):
    """(line number, value) for each non-blank line of JSON lines text; a line that is not JSON is a DataError
    naming the file, line and column, with ``example`` showing what a line should hold. Lines end at LF, CRLF or a
    bare CR only: str.splitlines also splits at U+2028 and other separators, which a JSON string may hold raw."""
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {number}: not valid JSON ({e.msg} at column {e.colno}); each line must be "
                            f"one object like {example}.") from e


def jsonl_rows(path: Path, example: str):
    """json_lines of a UTF-8 JSONL file (read_utf8: strict, a BOM dropped)."""
    yield from json_lines(read_utf8(path), path, example)


def source_name(path) -> str:
    return Path(path).name if path is not None else "built-in corpus"


def row_refs(rows, lines_before_data: int | None) -> str:
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


def drop_empty_texts(df: pd.DataFrame, columns: dict[str, str], source, lines_before_data, notes: list[str],
                     file_columns=()) -> pd.DataFrame:
    """Rows of `df` (texts as str, ROW_COL of 1-based data rows) whose text, or either text of a pair, is empty are
    dropped and counted in `notes`. Every row empty is an error: the column is probably the wrong one, so the
    message lists `file_columns` (the file's own). `columns` maps df's text columns to the names the user gave."""
    empty = pd.Series(False, index=df.index)
    for c in columns:
        empty |= ~df[c].str.strip().astype(bool)
    names = " or ".join(map(repr, columns.values()))
    if empty.all():
        hint = f" (columns in the file: {', '.join(map(repr, file_columns))})" if len(file_columns) else ""
        raise DataError(f"{source_name(source)}: text column {names} is empty in all {len(df)} rows. "
                        f"Check --text-column{hint}.")
    if empty.any():
        notes.append(f"{source_name(source)}: dropped {int(empty.sum())} of {len(df)} rows with empty text in "
                     f"{names}: {row_refs(df.loc[empty, ROW_COL], lines_before_data)}.")
    return df[~empty]


def require_columns(df: pd.DataFrame, source, columns: dict[str, str | None]) -> None:
    """Raise DataError naming `source`, the flag and the file's columns when a requested column is missing.
    ``columns`` maps a setting's name (text_column) to the column; None values are skipped."""
    present = list(df.columns)
    for option, col in columns.items():
        if col is not None and col not in present:
            flag = "--" + option.replace("_", "-")
            hint = ""
            if len(present) == 1 and any(d in present[0] for d in ("\t", ";", ",", "|")):
                hint = (
                    " The file was read as a single column, so its delimiter probably does not match its "
                    "extension (tab-separated files should end in .tsv, comma-separated in .csv)."
                )
            from tfbert.config import did_you_mean
            raise DataError(
                f"{source}: no column {col!r}{did_you_mean(col, map(str, present))} ({flag}). Columns in the file: "
                f"{', '.join(repr(c) for c in present)}. Pass the right name with {flag} NAME ({option}=... in Python)"
                f"{hint}"
            )


def column_names(spec: str | None, present=()) -> list[str]:
    """The columns of a text-column setting: "title,body" -> ["title", "body"]. A name in `present` (the file's
    columns) is taken whole, so a column whose name holds a comma still works."""
    if not spec:
        return []
    return [spec] if spec in present else [name.strip() for name in spec.split(",")]


def joined_text(df: pd.DataFrame, spec: str, source, option: str = "text_column") -> pd.Series:
    """The text of a text-column setting as str: one column, or several ("title,body") joined by TEXT_JOINER
    (empty parts left out). A missing column is a DataError naming it, the flag and the file's columns."""
    names = column_names(spec, df.columns)
    for name in names:
        require_columns(df, source, {option: name})
    parts = [as_text(df[name]) for name in names]
    if len(parts) == 1:
        return parts[0]
    return pd.Series([TEXT_JOINER.join(p for p in row if p.strip()) for row in zip(*parts)], index=df.index,
                     dtype=object)


def is_na(v) -> bool:
    # pd.isna is not usable on arbitrary cells (lists from JSON would give arrays).
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and np.isnan(v))


def as_text(s: pd.Series) -> pd.Series:
    """Cast a column to str, mapping missing values to '' (numbers become their str)."""
    return s.map(lambda v: "" if is_na(v) else str(v)).astype(object)


def is_missing_label(v) -> bool:
    return is_na(v) or (isinstance(v, str) and not v.strip())


def normalize_labels(s: pd.Series, path, column: str) -> tuple[pd.Series, bool]:
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
                f"{source_name(path)}: label column {column!r} holds {nums.nunique()} distinct numbers, "
                f"{frac.nunique()} of them non-integer (e.g. {', '.join(map(str, frac.unique()[:3]))}). "
                f"This looks like a regression target: train it with --task regression. For classification, "
                f"use a column of class labels (strings or integers), or bin the values into classes."
            )
    return stripped.map(str).astype(object), False
