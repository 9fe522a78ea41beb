"""A volume resampled onto an axis-aligned world grid, so that a plane of voxels is a true world plane.

napari slices a layer along its data axes. For an oblique volume (or a gantry-tilt shear) it draws one voxel
slice, rotated in-plane, chosen as if the view's centre were at the world origin: off by the distance from
the origin times tan(obliquity), and blank once that leaves the volume. Resampled onto a grid whose axes are
the world's R, A, S axes, every displayed slice is the world plane it claims to be.

Each grid voxel takes the value of the volume's voxel that contains its centre (nearest neighbour), so every
value shown is one the file holds - no blends at tissue borders, image and labels sampled at the same voxel
(statistics over them pair each label with its own voxel's value), the cursor readout's voxel is the one
drawn. The grid's step along each world axis is the extent of the nearest voxel axis along it (for a
gantry-tilt shear, the slice separation, so axial planes stay on the acquired slices) and it covers the
centres of all voxels. Around the volume it holds `fill`. The work runs slab by slab, reading the source
where its points fall (a memory map stays one), with bounded temporaries.
"""

from __future__ import annotations

import itertools
from typing import Any

import nibabel as nib
import numpy as np

# Grid voxels sampled per slab: bounds the index temporaries to ~50 MB.
SLAB_POINTS = 1 << 20


def aligned_grid(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The axis-aligned (RAS) grid covering the voxel centres of a volume of `shape` placed by `affine`.

    Returns
    -------
    grid_affine : ndarray, shape (4, 4)
        Diagonal (along each world axis, the extent of the nearest voxel axis's step along it) with the
        lowest corner's translation.
    grid_shape : (int, int, int)
    """
    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)  # voxel axis -> (world axis, direction)
    spacing = np.empty(3)
    for voxel_axis, (world_axis, _) in enumerate(ornt):
        spacing[int(world_axis)] = abs(affine[int(world_axis), voxel_axis])
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape[:3]])), dtype=np.float64)
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    low, high = world.min(axis=0), world.max(axis=0)
    grid_shape = tuple(int(np.ceil((h - lo) / s - 1e-6)) + 1 for lo, h, s in zip(low, high, spacing,
                                                                                  strict=True))
    grid_affine = np.diag([*spacing, 1.0])
    grid_affine[:3, 3] = low
    return grid_affine, grid_shape  # type: ignore[return-value]


def reslice(data: Any, affine: np.ndarray, grid_affine: np.ndarray, grid_shape: tuple[int, int, int], *,
            fill: float | None = None) -> np.ndarray:
    """`data` (I, J, K) placed by `affine`, sampled (nearest voxel) onto the grid; `fill` around the volume
    (default: the volume's lowest value, as around a scanner's field of view).

    `data` may be an ndarray or memory map, a ScaledProxy (stored values sampled, then scaled) or any
    array-like (read whole). The result keeps the values' type (float32 for a scaled file; uint8 for bool).
    """
    source, scaling = _sampleable(data)
    to_source = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(grid_affine, np.float64)
    if fill is None:
        fill = float(np.nanmin(source)) if source.size else 0.0
        if scaling is not None:  # the lowest scaled value (a negative slope turns the order round)
            fill = min(fill * scaling[0] + scaling[1], float(np.nanmax(source)) * scaling[0] + scaling[1])
    dtype = np.dtype(np.float32) if scaling is not None else source.dtype
    out = np.empty(grid_shape, dtype)
    limit = np.asarray(source.shape[:3])[:, None]
    step = max(1, SLAB_POINTS // max(grid_shape[0] * grid_shape[1], 1))
    for k0 in range(0, grid_shape[2], step):
        k1 = min(k0 + step, grid_shape[2])
        index = np.indices((grid_shape[0], grid_shape[1], k1 - k0), dtype=np.float64).reshape(3, -1)
        index[2] += k0
        # The voxel whose cube (half a voxel on each side of its centre) holds each grid point, if any.
        nearest = np.floor(to_source[:3, :3] @ index + to_source[:3, 3:] + 0.5).astype(np.int64)
        inside = np.all((nearest >= 0) & (nearest < limit), axis=0)
        values = np.full(index.shape[1], fill, dtype)
        picked = source[tuple(nearest[:, inside])]
        values[inside] = picked if scaling is None else picked * scaling[0] + scaling[1]
        out[:, :, k0:k1] = values.reshape(grid_shape[0], grid_shape[1], k1 - k0)
    return out


def _sampleable(data: Any) -> tuple[np.ndarray, tuple[float, float] | None]:
    """An ndarray to index (no copy of a memory map) and the (slope, intercept) to apply to what is taken."""
    if hasattr(data, "stored_and_scaling"):  # engines.io.nifti.ScaledProxy
        stored, scaling = data.stored_and_scaling
        return np.asarray(stored), scaling
    array = np.asarray(data)
    return (array.view(np.uint8) if array.dtype == np.bool_ else array), None
