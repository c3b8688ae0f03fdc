"""The run folder of a model (<output-dir>/<model-name>/runs/): who may write it, resuming, and finishing it.

A run holds its model folder's lock (`hold_model_folder`) from start to publish, so a second run into the same
folder refuses in one line instead of sharing runs/in-progress. The in-progress folder keeps the settings
(config.json) and the facts a resumed run must share (run.json: encoder handles, labels, a fingerprint of the data
files); a run whose settings, facts or data differ sets the interrupted one aside rather than mix them. Finished, it
becomes runs/<version> beside its export.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from tfbert.config import NON_ESSENTIAL, ConfigError
from tfbert.files import write_json

__all__ = ["hold_model_folder", "data_fingerprint", "prepare_run_dir", "finish_run", "finish_unexported",
           "read_history", "LOCK_FILE"]

LOCK_FILE = ".tfbert-run.lock"  # hidden: TF Serving and the version listing ignore it
DATA_SETTINGS = ("train_file", "valid_file", "test_file", "train_dir", "valid_dir", "test_dir", "synonyms")


class ModelFolderLock:
    """An exclusive OS lock on <base>/.tfbert-run.lock, released by `release` or when the process dies. The file
    names its holder (host, pid, start time) for the refusal message of the next run."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def hold_model_folder(base: Path) -> ModelFolderLock:
    """The model folder's lock; ConfigError naming the running holder when another run has it."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"{base} is in use by another run ({holder}); wait for it to finish, or give another "
                          "--model-name or --output-dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    return ModelFolderLock(fd, path)


def data_fingerprint(settings: dict) -> dict:
    """SHA-256 of each data file (or folder: its files' relative paths and contents) the settings name: a resumed
    run must read the data the interrupted one trained on."""
    out = {}
    for name in DATA_SETTINGS:
        value = settings.get(name)
        if value is None:
            continue
        path, digest = Path(value), hashlib.sha256()
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        out[name] = digest.hexdigest()
    return out



def prepare_run_dir(run_dir: Path, settings: dict, facts: dict, log=print) -> None:
    """Resume the in-progress run with the same settings and facts; set a different one aside rather than mix them.

    config.json holds the settings alone (so `--config runs/N/config.json` reproduces the run); run.json the facts
    of the run that a resumed run must share too (encoder handles, precision, label names)."""
    essential = lambda d: {k: v for k, v in d.items() if k not in NON_ESSENTIAL}  # noqa: E731
    saved, saved_facts = run_dir / "config.json", run_dir / "run.json"
    if saved.is_file():
        previous = json.loads(saved.read_text())
        previous_facts = json.loads(saved_facts.read_text()) if saved_facts.is_file() else None
        now, before = json.loads(json.dumps(facts)), previous_facts or {}
        differ = sorted(k for k in set(essential(previous)) | set(essential(settings))
                        if previous.get(k) != settings.get(k))
        differ += sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
        if not differ:
            log(f"resuming the interrupted run in {run_dir}")
            return
        aside = run_dir.with_name(f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}")
        log(f"warning: {run_dir} holds an interrupted run with other settings or data ({', '.join(differ[:6])}); "
            f"moved it to {aside}")
        run_dir.rename(aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(saved_facts, facts)
    write_json(saved, settings)  # last: its presence marks a complete run folder start


PUBLISHED_FILE = "published.json"


def record_published(run_dir: Path, version: Path, fitted: dict, export_facts: dict) -> None:
    """Notes in the run folder that its export is published (right after the publish), so that a rerun after a
    later failure (a full disk while plotting) finishes this run folder for that version instead of publishing a
    duplicate."""
    write_json(run_dir / PUBLISHED_FILE, {"export": str(version), "fitted": fitted, "export_facts": export_facts})


def published_export(run_dir: Path) -> dict | None:
    """What record_published noted, if its version is still there (a version pruned since is exported again)."""
    path = run_dir / PUBLISHED_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if (Path(record["export"]) / "saved_model.pb").is_file() else None


def finish_run(run_dir: Path, base: Path, version: Path, summary: dict) -> Path:
    """Writes metrics.json, drops the resume backup and moves the run folder beside its export (runs/<version>)."""
    write_json(run_dir / "metrics.json", summary)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    (run_dir / PUBLISHED_FILE).unlink(missing_ok=True)
    final_run = base / "runs" / version.name
    run_dir.rename(final_run)
    summary["run_dir"] = str(final_run)
    return final_run


def finish_unexported(run_dir: Path, base: Path, monitor: str, history: dict, summary: dict) -> dict:
    """A run trained without export: metrics.json holds the validation history's best, the weights are dropped
    (a search keeps settings and scores; the chosen settings are trained again) and the folder becomes
    runs/unexported, replacing an earlier one."""
    summary = {**summary, "monitor": monitor, f"best_{monitor}": max(history.get(monitor, [float("nan")])),
               "epochs_run": len(history.get("loss", []))}
    write_json(run_dir / "metrics.json", summary)
    for name in ("backup", "checkpoints"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    final_run = base / "runs" / "unexported"
    shutil.rmtree(final_run, ignore_errors=True)
    run_dir.rename(final_run)
    summary["run_dir"] = str(final_run)
    return summary


def read_history(path: Path) -> dict[str, list[float]]:
    import pandas as pd

    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    return {c: df[c].astype(float).tolist() for c in df.columns if c != "epoch"}
