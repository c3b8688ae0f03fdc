"""Atomic writes of directories and files, strict JSON and quoted CSV/TSV: a reader sees the old state or the whole
new one, and reads back what was written.

Directories are built in a hidden temp dir beside the target, then renamed into place.

A reader (TF Serving, a second process, the converter cache) sees either nothing or the whole directory.
Hidden names (leading '.') are ignored by TF Serving, which only loads integer-named version folders.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


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
    lease = Lease(tmp)
    try:
        yield tmp
        lease.release()  # not part of the published directory
        publish(tmp, target, overwrite=overwrite)
    except BaseException:
        lease.release()
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


LEASE_FILE = ".lease"
HEARTBEAT_SECONDS = 30
# A temp dir whose writer cannot be asked through a lock (another host on a shared volume, or no lease yet) is
# abandoned only after this long without a heartbeat.
LEASE_TTL_SECONDS = 600


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class Lease:
    """Who writes a temp dir: `<dir>/.lease` holds host, pid, PID namespace and start time, stays locked (an OS lock
    that dies with its process, whatever PID namespace or container it runs in) and is touched every
    HEARTBEAT_SECONDS, which another host on a shared volume can read even where it cannot see the lock."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LEASE_FILE
        self.file = open(self.path, "w", encoding="utf-8")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": _pid_namespace(),
                   "started": time.time()}, self.file)
        self.file.flush()
        self._stop = threading.Event()
        threading.Thread(target=self._beat, daemon=True, name="tfbert-lease").start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self.path.unlink(missing_ok=True)
            self.file.close()


def is_abandoned(directory: Path) -> bool:
    """Whether a temp dir's writer is gone: its lease's lock is free and the lease is this host's (the lock is then
    reliable, across PID namespaces too) or its heartbeat is older than LEASE_TTL_SECONDS; a temp dir without a
    lease (its writer just created it, or wrote it before leases existed) only by its age."""
    lease = directory / LEASE_FILE
    now = time.time()
    try:
        with open(lease, encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its writer holds it
            try:
                info = json.load(f)
            except ValueError:
                info = {}
        return info.get("host") == socket.gethostname() or now - lease.stat().st_mtime > LEASE_TTL_SECONDS
    except FileNotFoundError:
        try:
            return now - directory.stat().st_mtime > LEASE_TTL_SECONDS
        except FileNotFoundError:
            return False  # published or removed meanwhile


def remove_stale_temps(parent: Path) -> None:
    """Deletes temp dirs left by writers that were killed (is_abandoned)."""
    for p in parent.glob(".*.tmp-*-*"):
        if p.is_dir() and is_abandoned(p):
            shutil.rmtree(p, ignore_errors=True)


def atomic_write(path, write, *, binary: bool = False, encoding: str = "utf-8") -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``.

    Readers see the old file or the complete new one, never a partial write; on an error the
    temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the result gets normal file permissions
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding, "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return _finite(float(o))
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _finite(x: float):
    return x if math.isfinite(x) else None


def clean_json(o):
    # json.dumps writes NaN/Infinity, which strict JSON readers reject; store them as null.
    if isinstance(o, float):
        return _finite(o)
    if isinstance(o, dict):
        return {k: clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
    return o


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically (temp file + os.replace).

    numpy scalars/arrays and Paths are converted; NaN and infinities become null.
    """
    text = json.dumps(clean_json(obj), indent=2, ensure_ascii=False, default=json_default, allow_nan=False)
    atomic_write(path, lambda f: f.write(text + "\n"))
    return Path(path)


TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def write_table(path, df) -> Path:
    """Write ``df`` (without its index) as CSV (.csv) or TSV (.tsv, .tab), atomically; every CSV/TSV tfbert writes
    goes through here.

    Every non-numeric field is quoted (numbers stay bare), so the file reads back to the same rows with
    :func:`tfbert.data.tables.read_table`, pandas or Python's csv module. pandas' default (QUOTE_MINIMAL) quotes only
    fields holding the separator, a quote or a character of the line terminator ("\\n"): a bare carriage return
    was written unquoted, and readers, which end lines at \\r as well, split that row in two. Quoted, an empty string
    is "" (missing values too), so a row of empty fields is not a blank line that readers skip.
    """
    path = Path(path)
    sep = TABLE_SEPARATORS.get(path.suffix.lower())
    if sep is None:
        raise ValueError(f"{path}: write_table writes {', '.join(TABLE_SEPARATORS)} files, not {path.suffix or '(none)'!r}")
    atomic_write(path, lambda f: df.to_csv(f, index=False, sep=sep, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n"))
    return path
