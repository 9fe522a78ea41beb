"""Resampling onto an axis-aligned world grid: the grid covers the volume, values are the volume's there."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engines.io import read_volume
from engines.reslice import aligned_grid, reslice

SHAPE = (9, 7, 5)


def _affine(rotation_deg=(15, -10, 25), spacing=(0.6, 0.9, 2.5), shear=0.0) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix() @ np.diag(spacing)
    affine[1, 2] += shear  # a gantry tilt: slices step along A as well as S
    affine[:3, 3] = [40.0, -75.0, 120.0]
    return affine


def _source_index(affine, grid_affine, shape):
    grid = np.indices(shape).reshape(3, -1)
    world = grid_affine[:3, :3] @ grid + grid_affine[:3, 3:]
    return np.linalg.solve(affine[:3, :3], world - affine[:3, 3:]), world


@pytest.mark.parametrize("shear", [0.0, 0.8])
def test_the_grid_is_world_aligned_keeps_voxel_sizes_and_covers_every_voxel_centre(shear):
    affine = _affine(shear=shear)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    assert np.count_nonzero(grid_affine[:3, :3] - np.diag(np.diag(grid_affine[:3, :3]))) == 0
    nearest = nib.orientations.io_orientation(affine)[:, 0].astype(int)
    for voxel_axis, world_axis in enumerate(nearest):
        assert grid_affine[world_axis, world_axis] == pytest.approx(np.linalg.norm(affine[:3, voxel_axis]))
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in SHAPE])), float)
    inside = np.linalg.solve(grid_affine[:3, :3], (corners @ affine[:3, :3].T + affine[:3, 3] -
                                                   grid_affine[:3, 3]).T).T
    assert inside.min() > -1e-6 and np.all(inside.max(axis=0) <= np.asarray(grid_shape) - 1 + 1e-6)


@pytest.mark.parametrize("shear", [0.0, 0.8])
def test_values_are_the_volumes_at_each_grid_point(shear):
    affine = _affine(shear=shear)
    gradient = np.array([1.5, -0.4, 0.9])  # linear in world position: trilinear interpolation is exact
    ijk = np.indices(SHAPE).reshape(3, -1)
    data = ((affine[:3, :3] @ ijk + affine[:3, 3:]).T @ gradient).reshape(SHAPE).astype(np.float32)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    out = reslice(data, affine, grid_affine, grid_shape)
    source, world = _source_index(affine, grid_affine, grid_shape)
    within = np.all((source >= 0) & (source <= np.asarray(SHAPE)[:, None] - 1), axis=0)
    np.testing.assert_allclose(out.reshape(-1)[within], (world.T @ gradient)[within], rtol=1e-5, atol=1e-3)
    far = np.any((source < -0.5) | (source > np.asarray(SHAPE)[:, None] - 0.5), axis=0)
    assert np.all(out.reshape(-1)[far] == data.min())  # around the volume: its lowest value, nothing made up


def test_labels_take_the_nearest_voxels_label():
    affine = _affine()
    labels = np.random.default_rng(0).integers(0, 5, SHAPE).astype(np.uint16)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    out = reslice(labels, affine, grid_affine, grid_shape, labels=True)
    assert out.dtype == np.uint16
    source, _ = _source_index(affine, grid_affine, grid_shape)
    nearest = np.rint(source).astype(int)
    within = np.all((nearest >= 0) & (nearest < np.asarray(SHAPE)[:, None]), axis=0)
    np.testing.assert_array_equal(out.reshape(-1)[within], labels[tuple(nearest[:, within])])
    assert np.all(out.reshape(-1)[~within] == 0)


def test_a_scaled_nifti_is_interpolated_stored_then_scaled(tmp_path):
    affine = _affine()
    stored = np.random.default_rng(1).integers(-300, 300, SHAPE).astype(np.int16)
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(0.5, -1024.0)
    nib.save(image, tmp_path / "scaled.nii")
    volume = read_volume(tmp_path / "scaled.nii")
    assert not isinstance(volume.data, np.ndarray)  # a ScaledProxy over the memory map
    grid_affine, grid_shape = aligned_grid(volume.affine, SHAPE)
    expected = reslice(stored * 0.5 - 1024.0, volume.affine, grid_affine, grid_shape)
    np.testing.assert_allclose(reslice(volume.data, volume.affine, grid_affine, grid_shape), expected,
                               rtol=1e-6, atol=1e-3)
