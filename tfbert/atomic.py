"""Atomic directory writes: build in a hidden temp dir beside the target, then rename into place.

A reader (TF Serving, a second process, the converter cache) sees either nothing or the whole directory.
Hidden names (leading '.') are ignored by TF Serving, which only loads integer-named version folders.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, overwrite: bool = False):
    """Yields a temporary directory; on normal exit it becomes `target` by one rename.

    Raises FileExistsError if `target` exists (or appeared meanwhile) and `overwrite` is false.
    On an exception the temporary directory is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists")
    remove_stale_temps(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the published directory gets normal permissions
    try:
        yield tmp
        publish(tmp, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, target: Path, *, overwrite: bool = False) -> None:
    """Renames a finished `tmp` to `target`; the old target (with overwrite) is moved aside first, then deleted."""
    old = None
    if overwrite and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    try:
        os.rename(tmp, target)  # atomic; fails on an existing non-empty directory
    except OSError as e:
        if old is not None:
            os.rename(old, target)
        if target.exists():
            raise FileExistsError(f"{target} already exists") from e
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(parent: Path) -> None:
    """Deletes temp dirs left by writers that were killed (their pid, part of the name, is gone)."""
    for p in parent.glob(".*.tmp-*-*"):
        pid = p.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
