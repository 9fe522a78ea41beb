"""A volume resampled onto an axis-aligned world grid, so that a plane of voxels is a true world plane.

napari slices a layer along its data axes. For an oblique volume (or a gantry-tilt shear) it draws one voxel
slice, rotated in-plane, chosen as if the view's centre were at the world origin: off by the distance from
the origin times tan(obliquity), and blank once that leaves the volume. Resampled onto a grid whose axes are
the world's R, A, S axes, every displayed slice is the world plane it claims to be.

The grid keeps the voxel size of the voxel axis nearest each world axis and covers the centres of all the
volume's voxels. Images are interpolated trilinearly (float32; outside the volume its lowest value), labels
by nearest neighbour (their own type; outside 0). The work runs slab by slab, reading the source where its
points fall (a memory map stays one), with bounded temporaries.
"""

from __future__ import annotations

import itertools
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

# Grid voxels interpolated per slab: bounds the coordinate temporaries to ~50 MB.
SLAB_POINTS = 1 << 20


def aligned_grid(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The axis-aligned (RAS) grid covering the voxel centres of a volume of `shape` placed by `affine`.

    Returns
    -------
    grid_affine : ndarray, shape (4, 4)
        Diagonal (voxel sizes along R, A, S: those of the nearest voxel axes) with the lowest corner's
        translation.
    grid_shape : (int, int, int)
    """
    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)  # voxel axis -> (world axis, direction)
    spacing = np.empty(3)
    for voxel_axis, (world_axis, _) in enumerate(ornt):
        spacing[int(world_axis)] = np.linalg.norm(affine[:3, voxel_axis])
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape[:3]])), dtype=np.float64)
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    low, high = world.min(axis=0), world.max(axis=0)
    grid_shape = tuple(int(np.ceil((h - lo) / s - 1e-6)) + 1 for lo, h, s in zip(low, high, spacing,
                                                                                  strict=True))
    grid_affine = np.diag([*spacing, 1.0])
    grid_affine[:3, 3] = low
    return grid_affine, grid_shape  # type: ignore[return-value]


def reslice(data: Any, affine: np.ndarray, grid_affine: np.ndarray, grid_shape: tuple[int, int, int], *,
            labels: bool = False) -> np.ndarray:
    """`data` (I, J, K) placed by `affine`, resampled onto the grid (trilinear; nearest with `labels`).

    `data` may be an ndarray or memory map, a ScaledProxy (the stored values are interpolated, then scaled:
    linear interpolation commutes with slope and intercept) or any array-like (read whole).
    """
    source, scaling = _interpolable(data)
    to_source = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(grid_affine, np.float64)
    dtype = source.dtype if labels else np.dtype(np.float32)
    out = np.empty(grid_shape, dtype)
    plane = grid_shape[0] * grid_shape[1]
    step = max(1, SLAB_POINTS // max(plane, 1))
    for k0 in range(0, grid_shape[2], step):
        k1 = min(k0 + step, grid_shape[2])
        index = np.indices((grid_shape[0], grid_shape[1], k1 - k0), dtype=np.float64).reshape(3, -1)
        index[2] += k0
        coords = to_source[:3, :3] @ index + to_source[:3, 3:]
        # A voxel covers half a voxel on each side of its centre: clamp to the edge within that, and call
        # anything farther out outside the volume.
        outside = np.any((coords < -0.5) | (coords > np.asarray(source.shape[:3])[:, None] - 0.5), axis=0)
        values = ndimage.map_coordinates(source, coords, output=dtype, order=0 if labels else 1,
                                         mode="nearest", prefilter=False)
        values[outside] = 0 if labels else np.nan
        out[:, :, k0:k1] = values.reshape(grid_shape[0], grid_shape[1], k1 - k0)
    if labels:
        return out
    low = float(np.nanmin(source)) if source.size else 0.0
    if scaling is not None:
        out *= np.float32(scaling[0])
        out += np.float32(scaling[1])
        low = min(low * scaling[0] + scaling[1], float(np.nanmax(source)) * scaling[0] + scaling[1])
    out[np.isnan(out)] = low  # the volume's lowest value, as around a scanner's field of view
    return out


def _interpolable(data: Any) -> tuple[np.ndarray, tuple[float, float] | None]:
    """An ndarray map_coordinates can read (no copy of a memory map) and the (slope, intercept) to apply."""
    if hasattr(data, "stored_and_scaling"):  # engines.io.nifti.ScaledProxy
        stored, scaling = data.stored_and_scaling
        return np.asarray(stored), scaling
    array = np.asarray(data)
    return (array.view(np.uint8) if array.dtype == np.bool_ else array), None
