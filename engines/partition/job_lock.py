"""One training job at a time in an --out folder.

Two jobs in one folder would overwrite each other's inputs and prepared volumes under their ranks' feet (a
rank re-reads OUT/data/ at every step) and race for the checkpoint, each ending "done". So whatever writes
there holds OUT/.job.lock (flock: the kernel releases it however the process ends, kill -9 included):

- the launcher, exclusively from before it prepares anything; then (`JobFolder.share`) shared with its
  ranks, each of which holds its own share (`rank_share`) until it exits, so the folder stays held while a
  rank of a killed launcher is still writing its last checkpoint;
- the Train 3D dock, exclusively while it writes the layers it trains on to OUT/inputs/.

Any other launcher or dock is refused at once, naming the folder. Ranks started by hand (torchrun on several
nodes) hold it shared from their start, which keeps launchers and docks out but not the ranks of a second
such job: a shared lock cannot tell jobs apart. On a file system that cannot lock files (NFS without lockd,
some FUSE or CIFS mounts) the job runs unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engines.errors import InputError

LOCK = ".job.lock"
# Set for the ranks train-seg's launcher starts: it has said already when the folder cannot be locked.
UNDER_LAUNCHER = "TESSERA_UNDER_LAUNCHER"


# What flock raises on a file system that cannot lock files (NFS without lockd, some FUSE or CIFS mounts).
NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def _open_lock(folder: Path) -> int:
    """The lock file's descriptor: read-write (to note the launcher's pid), or read-only where someone else
    made it (a shared group folder: a local flock needs no write access)."""
    try:
        return os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as any new file
    except PermissionError:
        if not (folder / LOCK).exists():  # the folder itself cannot be written: say that
            raise
        return os.open(folder / LOCK, os.O_RDONLY)


def _lock(fd: int, operation: int, out: str | os.PathLike) -> bool:
    """flock(fd, operation | LOCK_NB): True when held, False on a file system without locks. Raises
    InputError naming the folder when another job holds it, or when the lock cannot be taken otherwise
    (NFS locks a file opened read-only by no one but its owner)."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _refusal(fd, out) from None
    except OSError as exc:
        if exc.errno in NO_LOCKS:
            return False
        raise InputError(f"cannot lock the job's folder ({exc.strerror or exc}); if its {LOCK} belongs to "
                         f"someone else, they can make it writable for you (chmod g+w), or choose another "
                         f"--out", out) from exc
    return True


def _refusal(fd: int, out: str | os.PathLike) -> InputError:
    """The refusal, naming the launcher that started the job holding the folder while it still runs (on
    another node: as written). A pid of a process that has ended names nothing: the folder's holder may be
    its ranks, or a job that could not write its own pid over it."""
    host, _, pid = os.pread(fd, 300, 0).decode("utf-8", "replace").strip().rpartition(":")
    started = ""
    if pid.isdigit() and host and host != socket.gethostname():
        started = f" (started by process {pid} on {host})"
    elif pid.isdigit():
        try:
            os.kill(int(pid), 0)
            started = f" (started by process {pid})"
        except PermissionError:  # alive, someone else's
            started = f" (started by process {pid})"
        except ProcessLookupError:
            pass
    return InputError(f"another training job{started} is using this folder, or the ranks of one are still "
                      f"finishing: wait for it to end, stop it, or choose another --out", out)


class JobFolder:
    """The launcher's hold on its --out folder (see `job_folder`)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @property
    def locked(self) -> bool:
        """False on a file system that cannot lock files: nothing keeps other jobs out."""
        return self._fd is not None

    def share(self) -> None:
        """Hold the folder shared from now on, so that the job's ranks can hold it too (`rank_share`)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)


@contextmanager
def job_folder(out: str | os.PathLike, *, unlocked: Callable[[str], None] = lambda why: None
               ) -> Iterator[JobFolder]:
    """Hold `out` (created if missing) exclusively for this job until the block ends. Folders this call
    created that hold nothing else when it ends (the job was refused before writing) are removed again.

    `unlocked(why)` is called where the file system cannot lock files; the job then goes on unlocked.
    Raises InputError naming the folder when another job holds it, or when it cannot be created.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError("--out must be a folder for the job's files; this is a file", out)
    created = folder
    while not created.parent.exists() and created.parent != created:
        created = created.parent  # the top-most folder this call makes
    created = created if not folder.exists() else None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(folder)
    except OSError as exc:
        raise InputError(f"cannot create the job's folder or its lock ({exc.strerror or exc})", out) from exc
    held = False
    try:
        held = _lock(fd, fcntl.LOCK_EX, out)
        if not held:
            unlocked("this folder's file system cannot lock files, so nothing stops a second job from using "
                     "it meanwhile")
        if held:
            _note_pid(fd, os.getpid())
        yield JobFolder(fd if held else None)
    finally:
        if held and created is not None and [p.name for p in folder.iterdir()] == [LOCK]:
            _remove_made(folder, created)
        elif held:
            _note_pid(fd, None)  # ended: a later refusal names no process
        os.close(fd)  # releases the lock


def _note_pid(fd: int, pid: int | None) -> None:
    """Write "host:pid" of the holder into the lock file (nothing when `pid` is None); a read-only one keeps
    what it holds."""
    try:
        os.ftruncate(fd, 0)
        if pid is not None:
            os.pwrite(fd, f"{socket.gethostname()}:{pid}\n".encode(), 0)
    except OSError:
        pass


def _remove_made(folder: Path, created: Path) -> None:
    """Remove the lock and the folders from `folder` up to `created`, as long as they are empty."""
    try:
        (folder / LOCK).unlink()
        for empty in (folder, *folder.parents):
            empty.rmdir()
            if empty == created:
                return
    except OSError:  # someone put something there meanwhile: it stays
        return


def rank_share(out: str | os.PathLike) -> int | None:
    """A rank's shared hold on its job's folder (the launcher shares it: `JobFolder.share`), kept until the
    process exits; returns the descriptor that keeps it, None where the file system cannot lock files.

    Raises InputError naming the folder when someone holds it exclusively (another job's launcher or dock).
    """
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # ranks started by hand (torchrun on several nodes)
        fd = _open_lock(folder)
    except OSError as exc:
        raise InputError(f"cannot create the job's folder or its lock ({exc.strerror or exc})", out) from exc
    try:
        held = _lock(fd, fcntl.LOCK_SH, out)
    except InputError:
        os.close(fd)
        raise
    if not held:
        os.close(fd)
        return None
    return fd
