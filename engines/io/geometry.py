"""Voxel-to-world geometry: ITK/DICOM (LPS) <-> RAS+ affines, and sanity checks on an affine.

Every reader ends here, so that a Volume's affine means the same thing whatever the format:
voxel index (i, j, k, 1) -> RAS+ millimetres, as nibabel uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np

from engines.errors import InputError

# DICOM and ITK use LPS+ (x to the patient's left, y posterior); RAS+ flips the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine(origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """RAS+ affine (4, 4) of a 3D ITK image from its LPS origin (3,), spacing (3,), direction (9,) row-major.

    ITK maps index -> LPS point as ``origin + direction @ diag(spacing) @ index``.
    """
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(np.asarray(spacing, float))
    lps[:3, 3] = np.asarray(origin, dtype=np.float64)
    return LPS_TO_RAS @ lps


def itk_geometry_3d(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]
) -> tuple[list[float], list[float], list[float]]:
    """ITK geometry of a 2D, 3D or 4D image reduced to 3D (origin (3,), spacing (3,), direction (9,)).

    A 2D image gains a third axis of 1 mm along the normal; a 4D image keeps its first three axes.
    """
    n = len(origin)
    matrix = np.asarray(direction, dtype=np.float64).reshape(n, n)
    out = np.eye(3)
    m = min(n, 3)
    out[:m, :m] = matrix[:m, :m]
    origin3 = [*list(origin)[:3], *[0.0] * (3 - m)]
    spacing3 = [*list(spacing)[:3], *[1.0] * (3 - m)]
    return origin3, spacing3, out.ravel().tolist()


def dicom_affine(
    position: Sequence[float],
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_spacing: float,
    *,
    slice_step: Sequence[float] | None = None,
) -> np.ndarray:
    """RAS+ affine (4, 4) for voxels indexed (column, row, slice), as ITK indexes a DICOM series.

    Parameters
    ----------
    position : ImagePositionPatient of the first slice (LPS mm, centre of its first voxel).
    orientation : ImageOrientationPatient: the row direction (along which the column index grows),
        then the column direction.
    pixel_spacing : PixelSpacing (distance between rows, distance between columns), in DICOM's order.
    slice_spacing : distance between slices along the normal (row x column direction).
    slice_step : the LPS vector from one slice's position to the next, when it is not along the normal
        (gantry tilt); the affine is then sheared and `slice_spacing` unused.
    """
    row_dir, col_dir = unit_cosines(orientation)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * float(pixel_spacing[1])
    lps[:3, 1] = col_dir * float(pixel_spacing[0])
    lps[:3, 2] = np.cross(row_dir, col_dir) * float(slice_spacing) if slice_step is None else slice_step
    lps[:3, 3] = np.asarray(position, dtype=np.float64)
    return LPS_TO_RAS @ lps


def unit_cosines(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The row and column direction cosines of an ImageOrientationPatient, each normalised to length 1."""
    values = np.asarray(orientation, dtype=np.float64)
    row_dir, col_dir = values[:3], values[3:6]
    return row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)


def check_affine(affine: np.ndarray, path: str | PathLike) -> np.ndarray:
    """Return `affine` (4, 4) if it is finite with non-zero spacing on every axis; raise InputError if not."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise InputError("the voxel-to-world transform contains NaN or infinite values", path)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(spacing == 0):
        raise InputError(f"voxel spacing is zero along an axis ({spacing.round(6).tolist()} mm)", path)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12 * float(np.prod(spacing)):
        raise InputError("the voxel-to-world transform is singular (its axes are not independent)", path)
    return affine
