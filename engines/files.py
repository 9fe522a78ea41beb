"""Guards for the user's files: no output may land on an input."""

from __future__ import annotations

import os
from pathlib import Path

from engines.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths `a` and `b` name the same file (symlinks, '..' and hard links resolved)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_overwrite(source: str | os.PathLike, out: str | os.PathLike, *, folder: bool = False) -> None:
    """InputError naming `source` if writing `out` (a file, or a folder written into) could modify it."""
    if same_file(source, out):
        raise InputError("the output is this input file: writing it would overwrite your data; choose "
                         "another output", source)
    if folder and Path(out).resolve() in Path(source).resolve().parents:
        raise InputError(f"this input lies inside the output folder {out}, which the job writes into; "
                         "choose another output folder", source)


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], kind: str) -> None:
    """InputError naming `path` when an output file could not be written there - a name not ending in one of
    `suffixes` (lower case, e.g. (".nii", ".nii.gz")) or a folder that does not exist - so that a command
    says so before its work, not after it."""
    if not Path(path).name.lower().endswith(suffixes):
        raise InputError(f"{kind} is written as {' or '.join(suffixes)}: give a name ending in one of them",
                         path)
    if not Path(path).parent.is_dir():
        raise InputError("the folder to write into does not exist", path)


def make_output_folder(path: str | os.PathLike) -> Path:
    """Create the folder a command writes its files into (parents included), or InputError naming it when
    it is a file or cannot be made (no permission, a read-only place)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError("the output must be a folder for the command's files; this is a file", path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"the output folder cannot be made ({exc.strerror or exc})", path) from exc
    return folder


def created_mode() -> int:
    """0o666 less the process's umask: the mode an ordinary new file gets. Files first written under a
    private temporary name (mkstemp, safetensors) get it back, so outputs are not left readable by the owner
    only. The umask is read from /proc on Linux: setting it to read it would change it for other threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return 0o666 & ~mask
