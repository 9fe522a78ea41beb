"""One training job at a time in an --out folder.

Two jobs in one folder would overwrite each other's prepared volumes under their ranks' feet (a rank
re-reads OUT/data/ at every step) and race for the checkpoint, each ending "done". The launcher holds an
exclusive lock on OUT/.job.lock (flock: released by the kernel however the launcher ends, kill -9 included)
from before it prepares anything until its ranks have exited; a second launcher is refused at once, naming
the process that holds the folder.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engines.errors import InputError

LOCK = ".job.lock"


@contextmanager
def job_folder(out: str | os.PathLike) -> Iterator[Path]:
    """Hold `out` (created if missing) for this job. A folder this call created and that holds nothing
    else when the job ends (it was refused before writing) is removed again.

    Raises InputError naming the folder when another job holds it, or when it cannot be created.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError("--out must be a folder for the job's files; this is a file", out)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot create the job's folder or its lock ({exc.strerror or exc})", out) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise InputError(f"another training job (process {holder}) is using this folder: wait for it to "
                             f"end, stop it, or choose another --out", out) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock
        if created and [p.name for p in folder.iterdir()] == [LOCK]:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
