"""Reading a folder of class folders: the layout of `tf.keras.utils.text_dataset_from_directory` (the TF "Classify
text with BERT" tutorial, ktrain's `texts_from_folder`).

    train/
      neg/  1.txt  2.txt ...
      pos/  1.txt  nested/3.txt ...

Labels are the class folders' names; every `.txt` file below one (sub-folders included) is one example, decoded as
UTF-8 with bad bytes replaced. Names starting with '.' (.DS_Store, .ipynb_checkpoints) are ignored, and so are files
directly in the top folder (the IMDB archive keeps urls_pos.txt there), as Keras does. Stricter than Keras, which
skips them silently: any other file inside a class folder, a class folder without a non-empty `.txt` file, or fewer
than two classes is a DataError naming the path. pandas only; the result is the table the file readers produce.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tfbert.data.tables import DataError

__all__ = ["read_folder", "TEXT_SUFFIX"]

TEXT_SUFFIX = ".txt"
_MAX_LISTED = 5


def read_folder(directory, *, min_classes: int = 2) -> pd.DataFrame:
    """One row per `.txt` file: columns `text` and `label` (the class folder's name), classes and files in sorted
    order. `df.attrs["notes"]` says what was read and skipped. `min_classes=1` reads a valid/test folder that may
    hold only some of the classes."""
    directory = Path(directory)
    if not directory.exists():
        raise DataError(f"{directory}: folder not found (relative paths are resolved from {Path.cwd()}).")
    if not directory.is_dir():
        raise DataError(f"{directory}: is not a folder; --train-dir/--valid-dir/--test-dir take a folder with one "
                        "sub-folder of .txt files per class (use --train-file for a table).")
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    classes = [p for p in entries if p.is_dir()]
    loose = [p.name for p in entries if not p.is_dir()]
    if len(classes) < min_classes:
        found = f"only {', '.join(repr(p.name) for p in classes)}" if classes else "none"
        raise DataError(f"{directory}: expected one sub-folder of .txt files per class, at least {min_classes}; found "
                        f"{found}. Layout: {directory}/<class name>/<example>.txt")
    rows, notes, n_bad_bytes, n_empty = [], [], 0, 0
    for folder in classes:
        texts, empty = [], []
        for path in _class_files(folder):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("utf-8-sig", errors="replace")
                n_bad_bytes += 1
            (texts if text.strip() else empty).append(text)
        if not texts:
            what = f"only empty .txt files ({len(empty)})" if empty else "no .txt files"
            raise DataError(f"{folder}: class folder {folder.name!r} holds {what}; every class needs examples. Add "
                            f"some or remove the folder.")
        n_empty += len(empty)
        rows += [(text, folder.name) for text in texts]
    notes.append(f"{directory}: {len(rows)} texts in {len(classes)} class folders "
                 f"({', '.join(p.name for p in classes[:20])}{' ...' if len(classes) > 20 else ''}).")
    if n_empty:
        notes.append(f"{directory}: skipped {n_empty} empty .txt files.")
    if n_bad_bytes:
        notes.append(f"{directory}: {n_bad_bytes} files held bytes that are not valid UTF-8; they were replaced by "
                     "U+FFFD.")
    if loose:
        notes.append(f"{directory}: ignored {len(loose)} files outside the class folders "
                     f"({', '.join(loose[:_MAX_LISTED])}{' ...' if len(loose) > _MAX_LISTED else ''}).")
    df = pd.DataFrame(rows, columns=["text", "label"], dtype=object)
    df.attrs.update(notes=notes, source=str(directory), lines_before_data=None)
    return df


def _class_files(folder: Path) -> list[Path]:
    """The .txt files below a class folder, hidden names skipped; anything else is refused by name."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if not name.lower().endswith(TEXT_SUFFIX):
                raise DataError(f"{path}: not a {TEXT_SUFFIX} file. Class folders hold one example per {TEXT_SUFFIX} "
                                f"file (UTF-8 text); move this file out of {folder}.")
            found.append(path)
    return found
