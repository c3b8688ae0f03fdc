"""Unlabelled texts for continued pre-training: a plain text file (one text per line) or a table's text column."""
from __future__ import annotations

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
