"""Unlabelled texts for continued pre-training: a plain text file (one document per line) or a table's text column,
and the documents' segments (sentences, or a table's rows grouped by a document column) that pair objectives need.
"""
from __future__ import annotations

import re
from pathlib import Path

from tfbert.data.tables import SUPPORTED_EXTENSIONS, DataError, joined_text, read_table, refuse_binary


def read_texts(path, text_column: str | None = None) -> tuple[list[str], list[str]]:
    """-> (non-empty texts, notes). A .csv/.tsv/.jsonl/... file is a table whose `text_column` ("text" unless given;
    "title,body" joins columns as tfbert.train does) holds the texts; any other file is one text per line, UTF-8
    with invalid bytes replaced. Blank texts are dropped (they have nothing to mask) and counted in the notes."""
    path = Path(path)
    notes = []
    if path.suffix.lower() in SUPPORTED_EXTENSIONS:
        df = read_table(path)
        texts = joined_text(df, text_column or "text", path.name).tolist()
        notes += df.attrs.get("notes", [])
    else:
        if text_column:
            raise DataError(f"{path}: --text-column {text_column!r} needs a table ({', '.join(SUPPORTED_EXTENSIONS)}); "
                            "a file with another extension is read as one text per line")
        if not path.is_file():
            raise DataError(f"{path}: file not found (relative paths are resolved from {Path.cwd()})")
        raw = path.read_bytes()
        refuse_binary(raw, path)
        content = raw.decode("utf-8-sig", errors="replace")
        texts = content.splitlines()
        # Invalid bytes never hold a newline, so line i of both decodings is the same line of the file.
        bad = sum(a != b for a, b in zip(texts, raw.decode("utf-8-sig", errors="ignore").splitlines()))
        if bad > 0:
            notes.append(f"{path.name}: {bad} line(s) had invalid UTF-8, replaced by U+FFFD")
    kept = [t.strip() for t in texts if t.strip()]
    if len(kept) < len(texts):
        notes.append(f"{path.name}: dropped {len(texts) - len(kept)} blank text(s)")
    if not kept:
        raise DataError(f"{path}: no non-blank text to pre-train on")
    return kept, notes


# A sentence ends at ., ! or ? (optionally followed by one closing quote or bracket) before white space; a line break
# inside a text (a table cell) also ends one. Abbreviations ("e.g. this") split too: for pair objectives a split
# inside a sentence only makes an easier "is next" pair, never a wrong label.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\s*\n\s*")


def sentences(text: str) -> list[str]:
    """A text's sentences by SENTENCE_BREAK, blank ones dropped."""
    return [s for s in (part.strip() for part in SENTENCE_BREAK.split(text)) if s]


def read_documents(path, text_column: str | None = None, document_column: str | None = None) \
        -> tuple[list[list[str]], list[str]]:
    """-> (documents, notes), each document its segments in order. Without `document_column` each text (a line of
    a text file, a row of a table) is a document and its segments are its sentences; with it (tables only),
    consecutive rows with the same value of that column are one document and each row's text is one segment."""
    if document_column is None:
        texts, notes = read_texts(path, text_column)
        return [sentences(t) for t in texts], notes
    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise DataError(f"{path}: --document-column {document_column!r} needs a table "
                        f"({', '.join(SUPPORTED_EXTENSIONS)})")
    df = read_table(path)
    texts = joined_text(df, text_column or "text", path.name).str.strip()
    keys = joined_text(df, document_column, path.name, option="document_column")
    documents, previous = [], None
    for key, text in zip(keys, texts):
        if key != previous:
            documents.append([])
            previous = key
        if text:
            documents[-1].append(text)
    kept = [d for d in documents if d]
    notes = [*df.attrs.get("notes", []), f"{path.name}: {len(texts)} rows in {len(kept)} documents "
                                         f"(consecutive rows with the same {document_column!r})"]
    if (texts == "").any():
        notes.append(f"{path.name}: dropped {int((texts == '').sum())} blank text(s)")
    if not kept:
        raise DataError(f"{path}: no non-blank text to pre-train on")
    return kept, notes
