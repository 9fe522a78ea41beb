"""npe2 hooks (see app/napari.yaml): Tessera's reader and sample data for plain `napari`.

The docks are contributed straight from their modules (`widgets.open_dock:OpenDock`, ...). napari calls a
reader in its GUI thread; Tessera's own "Open" goes through `app.viewer.open_paths`, which reads in a worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from app.demo import ct_small_layers, mni152_layers
from app.layers import LayerDataTuple, read_layers
from engines.io import VOLUME_EXTENSIONS
from engines.io.formats import is_dicom_file

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


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerDataTuple]] | None:
    """napari reader hook: a function reading `path` (or each of a list) if all look like volumes."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(looks_like_volume(p) for p in paths):
        return None
    return read_volumes


def read_volumes(path: str | list[str]) -> list[LayerDataTuple]:
    """Read each path with `engines.io.read_volume`; one image layer per path."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    return [layer for p in paths for layer in read_layers(os.fspath(p))]


def mni152_sample() -> list[LayerDataTuple]:
    """Sample data: the MNI152 T1 template and its GM/WM/CSF labels (nilearn's bundled files)."""
    return mni152_layers()


def ct_small_sample() -> list[LayerDataTuple]:
    """Sample data: pydicom's bundled CT slice (real CT, HU)."""
    return ct_small_layers()
