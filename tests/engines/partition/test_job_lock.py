"""One training job at a time in an --out folder (engines.partition.job_lock)."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engines.errors import InputError
from engines.partition import job_lock
from engines.partition.job_lock import LOCK, job_folder, rank_share

ROOT = Path(__file__).resolve().parents[3]
# A launcher that holds the folder, shares it and starts a "rank" that holds its share; prints the pids.
LAUNCHER = """
import subprocess, sys, time
from engines.partition.job_lock import job_folder
RANK = "import sys, time; from engines.partition.job_lock import rank_share; rank_share(sys.argv[1]); " \\
       "print('rank', flush=True); time.sleep(600)"
with job_folder(sys.argv[1]) as held:
    rank = None
    if len(sys.argv) > 2:
        held.share()
        rank = subprocess.Popen([sys.executable, "-c", RANK, sys.argv[1]], stdout=subprocess.PIPE, text=True)
        assert rank.stdout.readline().strip() == "rank"
    print("held", rank.pid if rank else 0, flush=True)
    time.sleep(600)
"""


def _launcher(out: Path, *, with_rank: bool = False) -> tuple[subprocess.Popen, int]:
    """Another job's launcher holding `out` (and its rank, sharing it); returns it and the rank's pid."""
    argv = [sys.executable, "-c", LAUNCHER, str(out), *(["rank"] if with_rank else [])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    word, rank = proc.stdout.readline().split()
    assert word == "held"
    return proc, int(rank)


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def test_a_second_job_is_refused_naming_the_process_that_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    holder, _ = _launcher(out)
    try:
        refused = f"another training job \\(started by process {holder.pid}\\) is using this folder"
        with pytest.raises(InputError, match=refused) as info, job_folder(out):
            pass
        assert info.value.path == str(out)
        with pytest.raises(InputError, match="another training job"):  # the refusal removed nothing
            rank_share(out)
        assert (out / LOCK).exists()
    finally:
        _stop(holder)


def test_the_folder_stays_held_while_a_rank_of_a_killed_launcher_lives(tmp_path):
    out = tmp_path / "run"
    launcher, rank = _launcher(out, with_rank=True)
    os.kill(launcher.pid, signal.SIGKILL)  # no clean-up of its own: the kernel drops its hold
    launcher.wait()
    try:
        with pytest.raises(InputError, match="ranks of one are still finishing"), job_folder(out):
            pass
    finally:
        os.kill(rank, signal.SIGKILL)
    for _ in range(200):  # the orphaned rank is reaped by init, not by us
        try:
            os.kill(rank, 0)
        except ProcessLookupError:
            break
        __import__("time").sleep(0.05)
    with job_folder(out):
        assert (out / LOCK).read_text().strip() == f"{socket.gethostname()}:{os.getpid()}"


def test_ranks_share_the_folder_their_launcher_shares_and_only_then(tmp_path):
    out = tmp_path / "run"
    with job_folder(out) as held:
        with pytest.raises(InputError, match="another training job"):
            rank_share(out)  # still preparing: exclusive
        held.share()
        fd = rank_share(out)
        assert fd is not None
        with pytest.raises(InputError, match="another training job"), job_folder(out):
            pass
        os.close(fd)


def test_the_same_folder_can_be_held_again_once_released_and_keeps_the_jobs_files(tmp_path):
    out = tmp_path / "run"
    with job_folder(out):
        (out / "data").mkdir()
    with job_folder(out):
        pass
    assert (out / "data").is_dir()


def test_folders_it_created_and_left_empty_are_removed_and_others_are_kept(tmp_path):
    out = tmp_path / "new" / "deeper" / "run"
    with pytest.raises(InputError), job_folder(out):  # refused before it wrote anything
        raise InputError("bad input", "x")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with job_folder(existing / "run"):
        pass
    assert existing.is_dir() and not (existing / "run").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(InputError, match="must be a folder"), job_folder(path):
        pass
    assert path.read_text() == "x"


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL])
def test_a_file_system_without_locks_runs_unlocked_and_says_so(tmp_path, monkeypatch, code):
    def no_locks(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    said = []
    with job_folder(tmp_path / "run", unlocked=said.append) as held:
        assert not held.locked
        held.share()
        assert rank_share(tmp_path / "run") is None
    assert len(said) == 1 and "cannot lock files" in said[0]


def _refuse_opening(monkeypatch, flag: int) -> None:
    """job_lock's os.open refuses (EACCES) what asks for `flag`, as for someone else's file or folder."""
    real_open = os.open

    def refusing(path, flags, *mode):
        if flags & flag:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *mode)

    monkeypatch.setattr(job_lock.os, "open", refusing)


def test_a_lock_file_it_cannot_write_is_locked_read_only(tmp_path, monkeypatch):
    """Another user's lock in a group folder (mode 644): flock needs no write access."""
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("")  # left by an earlier job of someone else's
    _refuse_opening(monkeypatch, os.O_RDWR)
    with job_folder(out) as held:
        assert held.locked


def test_a_lock_that_cannot_be_taken_for_another_reason_is_refused_not_run_unlocked(tmp_path, monkeypatch):
    """NFS refuses an exclusive lock on a file opened read-only (EBADF): that is no file system without
    locks, and the job must not run unlocked beside the one that holds the folder."""
    def nfs(fd, operation):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(fcntl, "flock", nfs)
    said = []
    with pytest.raises(InputError, match=r"cannot lock the job's folder .*chmod g\+w") as info, \
            job_folder(tmp_path / "run", unlocked=said.append):
        pass
    assert info.value.path == str(tmp_path / "run") and not said
    with pytest.raises(InputError, match="cannot lock the job's folder"):
        rank_share(tmp_path / "run")


def test_a_folder_that_cannot_be_written_says_so(tmp_path, monkeypatch):
    _refuse_opening(monkeypatch, os.O_CREAT)  # a folder that cannot be written
    with pytest.raises(InputError, match="Permission denied"), job_folder(tmp_path):
        pass


def test_a_refusal_names_a_launcher_only_while_it_runs_and_an_ended_job_names_none(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True).stdout.strip()
    here = socket.gethostname()
    fd = rank_share(out)  # ranks hold the folder
    try:
        for written, named in ((f"{here}:{ended}", "another training job is using"),  # killed, or stale
                               (f"{here}:{os.getpid()}", f"started by process {os.getpid()})"),
                               (f"node7.example:{ended}", f"started by process {ended} on node7.example)")):
            (out / LOCK).write_text(written)
            with pytest.raises(InputError, match=re.escape(named)), job_folder(out):
                pass

        def someone_elses(pid, signal):
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(job_lock.os, "kill", someone_elses)
        (out / LOCK).write_text(f"{here}:{ended}")
        with pytest.raises(InputError, match=re.escape(f"started by process {ended})")), job_folder(out):
            pass
    finally:
        os.close(fd)
    monkeypatch.undo()
    with job_folder(out):
        (out / "data").mkdir()
    assert (out / LOCK).read_text() == ""  # the job that ended is named by no later refusal
