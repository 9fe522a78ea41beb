"""Sampling onto an axis-aligned world grid: the grid covers the volume, each value is its voxel's."""

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
def test_the_grid_is_world_aligned_steps_as_the_voxel_axes_do_and_covers_every_voxel_centre(shear):
    affine = _affine(shear=shear)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    assert np.count_nonzero(grid_affine[:3, :3] - np.diag(np.diag(grid_affine[:3, :3]))) == 0
    nearest = nib.orientations.io_orientation(affine)[:, 0].astype(int)
    for voxel_axis, world_axis in enumerate(nearest):
        assert grid_affine[world_axis, world_axis] == pytest.approx(abs(affine[world_axis, voxel_axis]))
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in SHAPE])), float)
    inside = np.linalg.solve(grid_affine[:3, :3], (corners @ affine[:3, :3].T + affine[:3, 3] -
                                                   grid_affine[:3, 3]).T).T
    assert inside.min() > -1e-6 and np.all(inside.max(axis=0) <= np.asarray(grid_shape) - 1 + 1e-6)


@pytest.mark.parametrize("shear", [0.0, 0.8])
def test_each_grid_voxel_holds_the_value_of_the_voxel_containing_it(shear):
    affine = _affine(shear=shear)
    data = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    out = reslice(data, affine, grid_affine, grid_shape)
    assert out.dtype == np.float32
    source, _ = _source_index(affine, grid_affine, grid_shape)
    nearest = np.floor(source + 0.5).astype(int)
    within = np.all((nearest >= 0) & (nearest < np.asarray(SHAPE)[:, None]), axis=0)
    np.testing.assert_array_equal(out.reshape(-1)[within], data[tuple(nearest[:, within])])
    assert np.all(out.reshape(-1)[~within] == data.min())  # around the volume: its lowest value
    assert set(np.unique(out)) <= set(np.unique(data))  # nothing made up


def test_a_gantry_tilt_keeps_each_axial_plane_on_an_acquired_slice():
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    affine[1, 2] = 2.5 * np.tan(np.radians(15))  # slices step along A as well as S
    grid_affine, grid_shape = aligned_grid(affine, (16, 16, 12))
    assert grid_affine[2, 2] == pytest.approx(2.5) and grid_shape[2] == 12
    data = np.broadcast_to(np.arange(12, dtype=np.int16), (16, 16, 12))
    out = reslice(data, affine, grid_affine, grid_shape, fill=-1)
    for k in range(12):  # plane k shows slice k (where it shows anything)
        assert set(np.unique(out[:, :, k])) <= {k, -1} and k in out[:, :, k]


def test_labels_take_the_nearest_voxels_label():
    affine = _affine()
    labels = np.random.default_rng(0).integers(0, 5, SHAPE).astype(np.uint16)
    grid_affine, grid_shape = aligned_grid(affine, SHAPE)
    out = reslice(labels, affine, grid_affine, grid_shape, fill=0)
    assert out.dtype == np.uint16
    source, _ = _source_index(affine, grid_affine, grid_shape)
    nearest = np.floor(source + 0.5).astype(int)
    within = np.all((nearest >= 0) & (nearest < np.asarray(SHAPE)[:, None]), axis=0)
    np.testing.assert_array_equal(out.reshape(-1)[within], labels[tuple(nearest[:, within])])
    assert np.all(out.reshape(-1)[~within] == 0)


def test_a_scaled_nifti_is_sampled_stored_then_scaled(tmp_path):
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
    scaled_labels = reslice(volume.data, volume.affine, grid_affine, grid_shape, fill=0)
    assert set(np.unique(scaled_labels)) <= set(np.unique(stored * 0.5 - 1024.0)) | {0}  # scaled too
