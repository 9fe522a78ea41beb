"""npe2 hooks (see app/napari.yaml): Tessera's readers and sample data for plain `napari`.

The docks are contributed straight from their modules (`widgets.open_dock:OpenDock`, ...). napari calls a
reader in its GUI thread; Tessera's own "Open" goes through `app.viewer.open_paths`, which reads in a worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from app.cube_layers import read_cube_file
from app.demo import ct_small_layers, mni152_layers
from app.layers import VOLUME_KEY, LayerDataTuple, read_layers
from app.notify import notify_warning
from app.viewer import full_detail_here
from engines.io import VOLUME_EXTENSIONS
from engines.io.cubes import is_cube_path
from engines.io.formats import is_dicom_file

# Cube files plain napari's reader takes (app/napari.yaml): ENVI headers and WHU-Hi .mat files. TIFF is
# left to napari's own reader, which shows a multi-page TIFF as a stack too.
CUBE_SUFFIXES = (".hdr", ".mat")
# Files looked at to decide whether a folder holds DICOM (cheap: 132 bytes each).
FOLDER_PROBE_FILES = 32


def looks_like_volume(path: str | os.PathLike) -> bool:
    """True for a file with a volume extension, or a folder with a DICOM file among its first entries.

    Cheap (napari asks every reader about every dropped path); `read_volume` has the last word.
    """
    p = Path(path)
    if p.is_dir():
        files = (f for f in p.iterdir() if f.is_file())
        return any(f.suffix.lower() == ".dcm" or is_dicom_file(str(f))
                   for f in islice(files, FOLDER_PROBE_FILES))
    return p.name.lower().endswith(tuple(VOLUME_EXTENSIONS))


def _paths(path: str | list[str]) -> list[str]:
    return [os.fspath(path)] if isinstance(path, str | os.PathLike) else [os.fspath(p) for p in path]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerDataTuple]] | None:
    """napari reader hook: a function reading `path` (or each of a list) if all look like volumes."""
    paths = _paths(path)
    if not paths or not all(looks_like_volume(p) for p in paths):
        return None
    return read_volumes


def read_volumes(path: str | list[str]) -> list[LayerDataTuple]:
    """Read each path with `engines.io.read_volume`; one image layer per path (a large volume with its
    coarser levels only where `app.viewer.full_detail_here` says no). What reading found (a gap between
    slices, several series...) is shown as a warning notification."""
    layers = []
    for p in _paths(path):
        for data, kwargs, kind in read_layers(p):
            _warn(p, kwargs["metadata"][VOLUME_KEY].warnings)
            if kwargs.get("multiscale") and full_detail_here(data[0].shape):  # as lock_detail does
                data, kwargs = data[0], {k: v for k, v in kwargs.items() if k != "multiscale"}
            layers.append((data, kwargs, kind))
    return layers


def get_cube_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerDataTuple]] | None:
    """napari reader hook: a function reading `path` (or each of a list) if all are hyperspectral cubes
    Tessera reads (an ENVI header, a .mat file)."""
    paths = _paths(path)
    if not paths or not all(p.lower().endswith(CUBE_SUFFIXES) and is_cube_path(p) for p in paths):
        return None
    return read_cubes


def read_cubes(path: str | list[str]) -> list[LayerDataTuple]:
    """Read each cube (with the ground truth beside it) or class map: `app.cube_layers.read_cube_file`."""
    layers = []
    for p in _paths(path):
        cube_layers, warnings = read_cube_file(p)
        _warn(p, warnings)
        layers += cube_layers
    return layers


def _warn(path: str, warnings: list[str]) -> None:
    if warnings:
        notify_warning(f"{os.path.basename(path.rstrip('/')) or path}: " + "; ".join(warnings))


def mni152_sample() -> list[LayerDataTuple]:
    """Sample data: the MNI152 T1 template and its GM/WM/CSF labels (nilearn's bundled files)."""
    return mni152_layers()


def ct_small_sample() -> list[LayerDataTuple]:
    """Sample data: pydicom's bundled CT slice (real CT, HU)."""
    return ct_small_layers()
