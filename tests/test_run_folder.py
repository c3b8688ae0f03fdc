"""The model folder's run state (tfbert.run_folder, issue 28): one run at a time, resumes only on the same data,
version numbers never reused, model names that stay inside --output-dir."""
import json
import subprocess
import sys

import pytest

from tfbert.config import ConfigError, RunConfig
from tfbert.export.publish import next_version
from tfbert.run_folder import data_fingerprint, hold_model_folder, prepare_run_dir

_TRY_LOCK = ("import sys; from pathlib import Path; from tfbert.run_folder import hold_model_folder\n"
             "try:\n    hold_model_folder(Path(sys.argv[1]))\nexcept Exception as e:\n    print(e)")


def test_a_second_run_into_the_same_model_folder_is_refused_naming_the_first(tmp_path):
    lock = hold_model_folder(tmp_path / "m")
    with pytest.raises(ConfigError, match=r"m is in use by another run \(pid \d+ on .*\); wait for it"):
        hold_model_folder(tmp_path / "m")
    other = subprocess.run([sys.executable, "-c", _TRY_LOCK, str(tmp_path / "m")], capture_output=True, text=True)
    assert "is in use by another run" in other.stdout, other.stderr[-2000:]  # another process: the OS lock
    lock.release()
    hold_model_folder(tmp_path / "m").release()  # free again once released (or once its process dies)
    other = subprocess.run([sys.executable, "-c", _TRY_LOCK, str(tmp_path / "m")], capture_output=True, text=True)
    assert other.returncode == 0 and other.stdout == ""


def test_fit_refuses_a_held_model_folder_before_reading_data(tmp_path):
    from tfbert.fit import fit
    lock = hold_model_folder(tmp_path / "out" / "classify")  # the model name defaults to the task
    try:
        with pytest.raises(ConfigError, match="in use by another run"):
            fit(RunConfig(output_dir=str(tmp_path / "out"), train_file=str(tmp_path / "missing.csv"),
                          task="classify"), log=lambda *_: None)  # a data error would come later
    finally:
        lock.release()


def test_a_resume_on_edited_data_sets_the_interrupted_run_aside(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood,pos\nbad,neg\n")
    folder = tmp_path / "folder"
    (folder / "pos").mkdir(parents=True)
    (folder / "pos" / "a.txt").write_text("good")
    settings = {"task": "classify", "train_file": str(data), "train_dir": None, "seed": 0}
    before = data_fingerprint({**settings, "train_dir": str(folder)})
    assert set(before) == {"train_file", "train_dir"}
    run_dir, notes = tmp_path / "m" / "runs" / "in-progress", []
    prepare_run_dir(run_dir, settings, {"data": data_fingerprint(settings)}, notes.append)
    prepare_run_dir(run_dir, settings, {"data": data_fingerprint(settings)}, notes.append)
    assert notes[-1].startswith("resuming the interrupted run")
    data.write_text("text,label\ngood,neg\nbad,pos\nmeh,pos\n")  # labels flipped, a row added
    (folder / "pos" / "a.txt").write_text("great")
    assert data_fingerprint({**settings, "train_dir": str(folder)})["train_dir"] != before["train_dir"]
    prepare_run_dir(run_dir, settings, {"data": data_fingerprint(settings)}, notes.append)
    assert "other settings or data (data)" in notes[-1] and "moved it to" in notes[-1]
    aside = [p for p in run_dir.parent.iterdir() if p.name.startswith("abandoned-")]
    assert len(aside) == 1 and json.loads((aside[0] / "run.json").read_text())["data"] != \
        json.loads((run_dir / "run.json").read_text())["data"]


def test_a_pruned_versions_number_is_not_reused(tmp_path):
    base = tmp_path / "m"
    for name in ("1", "runs/1", "runs/2", "runs/in-progress", ".2.tmp-1-x"):
        (base / name).mkdir(parents=True)
    assert next_version(base) == 3  # version 2 was deleted from the server; its run folder still describes it
    (base / "7").mkdir()
    assert next_version(base) == 8


@pytest.mark.parametrize("name", ["../escaped", "/abs/path", "a/b", ".", "..", ".hidden", "", "x" * 200])
def test_model_names_that_would_leave_the_output_folder_are_refused(name):
    with pytest.raises(ConfigError, match="--model-name .*: one folder name"):
        RunConfig(model_name=name).with_task_defaults(__import__("tfbert.tasks").tasks.TASKS["sentiment"]).check()


def test_ordinary_model_names_pass():
    from tfbert.tasks import TASKS
    for name in ("moods", "moods-v2.1", "A_b"):
        RunConfig(model_name=name).with_task_defaults(TASKS["sentiment"]).check()


_WRITER = ("import sys; from pathlib import Path; from tfbert.files import Lease\n"
           "d = Path(sys.argv[1]); d.mkdir(); lease = Lease(d); print('ready', flush=True); sys.stdin.readline()")


def test_a_temp_dir_is_removed_only_once_its_writer_is_gone(tmp_path):
    """Issue 28, case 4: a writer's temp dir is judged by its lease (a lock that dies with the process, and a
    heartbeat for other hosts), not by whether its pid exists here (from another PID namespace it never does)."""
    import os
    import time

    from tfbert.files import LEASE_FILE, LEASE_TTL_SECONDS, atomic_directory, remove_stale_temps
    live = tmp_path / ".1.tmp-999999-abc"  # a pid this process cannot see, as from a container beside it
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(live)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    remove_stale_temps(tmp_path)
    assert live.is_dir()  # its writer holds the lease
    writer.kill()
    writer.wait()
    remove_stale_temps(tmp_path)
    assert not live.exists()  # killed: the lock went with it

    old = time.time() - LEASE_TTL_SECONDS - 1
    elsewhere = tmp_path / ".2.tmp-5-x"  # another host's writer: its lock is not visible here, its heartbeat is
    elsewhere.mkdir()
    (elsewhere / LEASE_FILE).write_text(json.dumps({"host": "another-host", "pid": 5}))
    leaseless = tmp_path / ".3.tmp-6-y"  # just created (or from before leases): judged by its age
    leaseless.mkdir()
    remove_stale_temps(tmp_path)
    assert elsewhere.is_dir() and leaseless.is_dir()
    os.utime(elsewhere / LEASE_FILE, (old, old))
    os.utime(leaseless, (old, old))
    remove_stale_temps(tmp_path)
    assert not elsewhere.exists() and not leaseless.exists()

    with atomic_directory(tmp_path / "4") as d:
        assert (d / LEASE_FILE).is_file()
        (d / "saved_model.pb").write_text("x")
    assert sorted(p.name for p in (tmp_path / "4").iterdir()) == ["saved_model.pb"]  # the lease is not published
