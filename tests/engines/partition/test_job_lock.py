"""One training job at a time in an --out folder (engines.partition.job_lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engines.errors import InputError
from engines.partition.job_lock import LOCK, job_folder

ROOT = Path(__file__).resolve().parents[3]
HOLD = """
import sys, time
from engines.partition.job_lock import job_folder
with job_folder(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(out: Path) -> subprocess.Popen:
    """Another process (another launcher) holding `out`; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_job_is_refused_naming_the_process_that_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        refused = f"another training job \\(process {holder.pid}\\)"
        with pytest.raises(InputError, match=refused) as info, job_folder(out):
            pass
        assert info.value.path == str(out)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_the_folder(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    os.kill(holder.pid, signal.SIGKILL)  # no clean-up of its own: the kernel drops the lock
    holder.wait()
    with job_folder(out) as folder:
        assert (folder / LOCK).read_text().strip() == str(os.getpid())


def test_the_same_process_cannot_hold_a_folder_twice_and_can_hold_it_again_after(tmp_path):
    out = tmp_path / "run"
    with job_folder(out):
        (out / "data").mkdir()
        with pytest.raises(InputError, match="another training job"), job_folder(out):
            pass
    with job_folder(out):
        pass
    assert (out / "data").is_dir()  # a folder with the job's files stays


def test_a_folder_it_created_and_left_empty_is_removed_and_others_are_kept(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(InputError), job_folder(out):  # refused before it wrote anything
        raise InputError("bad input", "x")
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with job_folder(existing):
        pass
    assert existing.is_dir()


def test_an_out_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(InputError, match="must be a folder"), job_folder(path):
        pass
    assert path.read_text() == "x"
