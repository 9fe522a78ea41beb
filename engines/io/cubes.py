"""Hyperspectral cubes: which paths are cubes, and reading them (ENVI, WHU-Hi .mat, multi-band TIFF).

`read_cube(path) -> Cube` (DESIGN §2) is the one entry point; the format readers live in ``cube_envi``,
``cube_whuhi`` and ``cube_tiff``. A cube's ground truth is looked for beside it as ``<stem>_gt.mat``,
``<stem>_gt.hdr`` or ``<stem>_gt.tif(f)``, or given explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.cube import Cube
from engines.errors import InputError

ENVI_DATA_SUFFIXES = (".img", ".raw", ".bsq", ".bil", ".bip", ".dat", ".bin", ".hyspex")
TIFF_SUFFIXES = (".tif", ".tiff")
GT_SUFFIXES = (".mat", ".hdr", ".tif", ".tiff")


def is_cube_path(path: str | os.PathLike) -> bool:
    """True for paths `read_cube` handles: an ENVI header (or its data file with the .hdr beside it),
    a .mat file, or a .tif/.tiff. Cheap: reads at most the first bytes of a header.
    """
    from engines.io.cube_envi import header_beside, is_envi_header

    p = Path(path)
    if not p.is_file():
        return False
    suffix = p.suffix.lower()
    if suffix == ".hdr":
        return is_envi_header(p)  # an Analyze 7.5 .hdr is binary and belongs to the volume readers
    if suffix in (".mat", *TIFF_SUFFIXES):
        return True
    return suffix in ("", *ENVI_DATA_SUFFIXES) and header_beside(p) is not None


def read_cube(path: str | os.PathLike, *, gt: str | os.PathLike | None = None) -> Cube:
    """Read a hyperspectral cube and, when found or given, its ground truth.

    Parameters
    ----------
    path : str or PathLike
        ENVI .hdr (or its data file), WHU-Hi-style .mat, or multi-band .tif/.tiff.
    gt : str or PathLike, optional
        Ground truth to use instead of the one found beside the cube (.mat, single-band ENVI, TIFF).

    Returns
    -------
    Cube
        ``data`` (H, W, B), lazy where the format allows; ``labels`` (H, W) int32 or None.

    Raises
    ------
    InputError
        Unknown format, a malformed file, or ground truth whose shape is not (H, W).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path)
    if not is_cube_path(p):
        raise InputError(
            "not a hyperspectral cube (expected an ENVI .hdr or its data file, a .mat, or a .tif/.tiff)", path
        )
    suffix = p.suffix.lower()
    labels = None  # a TIFF's ground truth, read first: its shape tells which of the file's axes are bands
    if suffix == ".mat":
        from engines.io.cube_whuhi import read_mat_cube

        cube = read_mat_cube(p)
    elif suffix in TIFF_SUFFIXES:
        from engines.io.cube_tiff import read_tiff_cube

        gt = find_ground_truth(p) if gt is None else gt
        labels = None if gt is None else read_labels(gt)
        cube = read_tiff_cube(p, rows_cols=None if labels is None else labels[0].shape)
    else:
        from engines.io.cube_envi import read_envi_cube

        cube = read_envi_cube(p)
    cube.source = str(path)
    if gt is None:
        gt = find_ground_truth(p)
    if gt is not None:
        cube.labels, names = read_labels(gt) if labels is None else labels
        check_label_shape(cube.labels, cube.shape[:2], gt)
        cube.class_names = names or cube.class_names
        cube.meta["ground_truth"] = str(gt)
    if cube.labels is not None and len(cube.class_names) < int(cube.labels.max(initial=0)):
        cube.class_names = [
            *cube.class_names,
            *(f"Class {c}" for c in range(len(cube.class_names) + 1, int(cube.labels.max()) + 1)),
        ]
    return cube


def find_ground_truth(path: str | os.PathLike) -> Path | None:
    """``<stem>_gt.mat`` / ``.hdr`` / ``.tif`` / ``.tiff`` beside a cube file, or None."""
    p = Path(path)
    stem = p.name[: -len(".hdr")] if p.name.lower().endswith(".hdr") else p.stem
    for suffix in GT_SUFFIXES:
        cand = p.with_name(f"{stem}_gt{suffix}")
        if cand.is_file():
            return cand
    return None


def read_labels(
    path: str | os.PathLike, *, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Ground truth (or a split file) as (H, W) int32 labels, 0 = unlabelled, and its class names if any.

    Raises InputError when the file holds no 2-D label image or, with `shape`, one of another shape.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("this is a folder, not a ground-truth file" if p.is_dir() else
                         "ground-truth file not found", path)
    suffix = p.suffix.lower()
    if suffix == ".mat":
        from engines.io.cube_whuhi import read_mat_labels

        labels, names = read_mat_labels(p)
    elif suffix in TIFF_SUFFIXES:
        from engines.io.cube_tiff import read_tiff_labels

        labels, names = read_tiff_labels(p)
    elif suffix in ("", ".hdr", *ENVI_DATA_SUFFIXES):
        from engines.io.cube_envi import read_envi_labels

        labels, names = read_envi_labels(p)
        labels = check_labels(labels, p)
    else:
        raise InputError(f"ground truth is read from .mat, ENVI (.hdr and its data file) or .tif/.tiff "
                         f"files, not {suffix}", path)
    if shape is not None:
        check_label_shape(labels, shape, path)
    return labels, names


def check_label_shape(labels: np.ndarray, shape: tuple[int, int], path: str | os.PathLike) -> None:
    """InputError naming `path` unless the labels are `shape` (the cube's rows x columns)."""
    if tuple(labels.shape) != tuple(shape):
        raise InputError(
            f"ground truth has shape {labels.shape[0]}x{labels.shape[1]} but the cube is "
            f"{shape[0]}x{shape[1]} (rows x columns)",
            path,
        )


def check_labels(labels: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """`labels` as a 2-D int32 array of non-negative whole numbers; InputError otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise InputError(f"ground truth must be a 2-D label image, got shape {arr.shape}", path)
    if not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool
    ):
        raise InputError(f"ground truth must hold numbers, not {arr.dtype}", path)
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or np.any(arr != np.round(arr))):
        raise InputError("ground truth must hold whole numbers >= 0 (0 = unlabelled)", path)
    return arr.astype(np.int32)


def check_wavelengths(
    wavelengths: np.ndarray, bands: int, path: str | os.PathLike, warnings: list[str]
) -> np.ndarray:
    """`wavelengths` (nm) as float64 (B,), checked: one per band, finite. Not increasing (a file listed
    from red to blue, or two detectors overlapping) is read as it is, with a warning in `warnings`."""
    wl = np.asarray(wavelengths, dtype=np.float64).ravel()
    if wl.size != bands:
        raise InputError(f"{wl.size} wavelengths for {bands} bands", path)
    if not np.all(np.isfinite(wl)):
        raise InputError("wavelengths contain non-numbers", path)
    bad = np.flatnonzero(np.diff(wl) <= 0)
    if bad.size:
        i = int(bad[0])
        warnings.append(
            f"wavelengths do not increase (band {i + 1} is {wl[i]:g} nm, band {i + 2} {wl[i + 1]:g} nm): "
            "bands keep the file's order; spectra are drawn by wavelength"
        )
    return wl
