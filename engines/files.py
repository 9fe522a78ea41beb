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
