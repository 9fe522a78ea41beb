"""Volume -> layer adapters: world placement in RAS mm, views not copies, contrast limits (no Qt)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from napari.layers import Layer
from scipy.spatial.transform import Rotation

import app.layers
from app.layers import (
    CT_DEFAULT_PRESET,
    LAZY_CHUNKS,
    SUBSAMPLE_VOXELS,
    canonical_view,
    contrast_limits,
    full_resolution,
    image_layer,
    labels_layer,
    layer_volume,
    obliquity_deg,
)
from app.window_level import CT_PRESETS
from engines.volume import Volume

# Voxel axis -> world axis permutations with signs: (a sagittal LPS series, a coronal LAS one, ...).
PERMUTATIONS = [
    np.eye(3),
    np.diag([-1.0, -1.0, 1.0]),  # LPS (DICOM axial)
    np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float),  # i->A, j->-S, k->-R
    np.array([[0, 1, 0], [0, 0, -1], [-1, 0, 0]], dtype=float),
]
TILTS_DEG = [(0, 0, 0), (12, -7, 20)]  # axis-aligned, and oblique


def _affine(perm: np.ndarray, tilt_deg: tuple[float, float, float], spacing=(0.8, 1.3, 2.5),
            origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", tilt_deg, degrees=True).as_matrix() @ perm @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _volume(perm, tilt, shape=(7, 9, 11), modality="MR") -> Volume:
    data = np.random.default_rng(0).integers(-1000, 1000, shape).astype(np.int16)
    return Volume(data, _affine(perm, tilt), modality=modality)


def _voxels(shape):
    corners = itertools.product(*[(0, n - 1) for n in shape])
    return [*corners, tuple(n // 2 for n in shape), (1, 2, 3)]


@pytest.mark.parametrize("perm", PERMUTATIONS)
def test_layer_places_every_voxel_where_the_volume_affine_says(perm):
    volume = _volume(perm, TILTS_DEG[0])
    layer = Layer.create(*image_layer(volume))
    for index in _voxels(volume.shape):
        world = (volume.affine @ [*index, 1.0])[:3]
        data_index = np.asarray(layer.world_to_data(world))
        np.testing.assert_allclose(data_index, np.rint(data_index), atol=1e-6)  # lands on a voxel centre
        assert layer.data[tuple(np.rint(data_index).astype(int))] == volume.data[index]
        np.testing.assert_allclose(layer.data_to_world(np.rint(data_index)), world, atol=1e-6)


@pytest.mark.parametrize(("perm", "tilt"), list(itertools.product(PERMUTATIONS, TILTS_DEG)))
def test_canonical_view_is_a_view_in_closest_ras_order(perm, tilt):
    volume = _volume(perm, tilt)
    data, affine = canonical_view(volume)
    assert np.shares_memory(data, volume.data)
    # each data axis now points mostly along the same world axis, positively
    linear = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    assert (np.argmax(np.abs(linear), axis=0) == [0, 1, 2]).all()
    assert (np.diag(linear) > 0).all()
    assert obliquity_deg(affine) == pytest.approx(obliquity_deg(volume.affine))
    assert (obliquity_deg(affine) > 1) == any(tilt)


@pytest.mark.parametrize("perm", PERMUTATIONS)
@pytest.mark.parametrize("tilt", [(12, -7, 20), (0.5, 0, 0)])
def test_an_oblique_volume_is_shown_sampled_on_world_planes(perm, tilt):
    """napari would slice an oblique layer wrongly away from the world origin: the layer holds the volume
    sampled on an axis-aligned grid, each value that of the file's voxel containing the grid point."""
    affine = _affine(perm, tilt, origin=(60.0, -80.0, 45.0))
    volume = _volume(perm, tilt)
    volume.affine = affine
    layer = Layer.create(*image_layer(volume))
    linear = np.asarray(layer.affine.affine_matrix)[:3, :3]
    np.testing.assert_allclose(linear, np.diag(np.diag(linear)), atol=1e-12)  # world-aligned planes
    assert (np.diag(linear) > 0).all() and layer_volume(layer) is volume
    assert layer.data.dtype == volume.data.dtype and not layer.rgb
    grid = np.indices(layer.data.shape).reshape(3, -1)
    points = np.asarray([layer.data_to_world(g) for g in grid.T])
    nearest = np.floor(np.linalg.solve(affine[:3, :3], (points - affine[:3, 3]).T) + 0.5).astype(int)
    inside = np.all((nearest >= 0) & (nearest < np.asarray(volume.shape)[:, None]), axis=0)
    assert inside.sum() > 0.1 * inside.size
    values = layer.data.reshape(-1)
    np.testing.assert_array_equal(values[inside], volume.data[tuple(nearest[:, inside])])
    assert np.all(values[~inside] == volume.data.min())  # around the volume: nothing made up


def test_a_single_oblique_slice_and_thin_stacks_open_as_greyscale_volumes():
    single = Volume(np.ones((64, 48, 1), np.int16), _affine(PERMUTATIONS[0], (10, 0, 0)), modality="CT")
    layer = Layer.create(*image_layer(single))  # a world plane would cut one slice in a line: as it is
    assert layer.data.shape == (64, 48, 1) and not layer.rgb
    thin = Volume(np.ones((32, 24, 3), np.int16), np.diag([1.0, 1.0, 2.0, 1.0]), modality="CT")
    assert not Layer.create(*image_layer(thin)).rgb  # 3 slices is not a colour image


def test_labels_from_the_same_volume_overlay_the_image_exactly():
    affine = _affine(PERMUTATIONS[2], TILTS_DEG[0])
    image = Volume(np.random.default_rng(1).normal(size=(6, 8, 10)).astype(np.float32), affine, modality="MR")
    labels = Volume((image.data > 0).astype(np.uint8), affine, meta={"label_names": ["background", "fg"]})
    image_l, labels_l = Layer.create(*image_layer(image)), Layer.create(*labels_layer(labels))
    for index in _voxels(image.shape):
        world = (affine @ [*index, 1.0])[:3]
        np.testing.assert_allclose(image_l.world_to_data(world), labels_l.world_to_data(world), atol=1e-9)
        at = tuple(np.rint(labels_l.world_to_data(world)).astype(int))
        assert labels_l.data[at] == (image_l.data[at] > 0)
    assert list(labels_l.features["name"]) == ["background", "fg"]


def test_oblique_labels_are_resampled_by_nearest_label_onto_the_images_grid():
    affine = _affine(PERMUTATIONS[1], TILTS_DEG[1])
    image = Volume(np.random.default_rng(1).normal(size=(6, 8, 10)).astype(np.float32), affine, modality="MR")
    labels = Volume(np.random.default_rng(2).integers(0, 4, (6, 8, 10)).astype(np.uint8), affine)
    image_l, labels_l = Layer.create(*image_layer(image)), Layer.create(*labels_layer(labels))
    assert labels_l.data.shape == image_l.data.shape and labels_l.data.dtype == np.uint8
    np.testing.assert_allclose(labels_l.affine.affine_matrix, image_l.affine.affine_matrix)
    assert set(np.unique(labels_l.data)) <= {0, 1, 2, 3}  # labels, never blends of them
    for g in np.indices(labels_l.data.shape).reshape(3, -1).T[::7]:
        source = np.linalg.solve(affine, [*labels_l.data_to_world(g), 1.0])[:3]
        nearest = np.rint(source).astype(int)
        if np.all(nearest >= 0) and np.all(nearest < labels.shape):
            assert labels_l.data[tuple(g)] == labels.data[tuple(nearest)]


def test_layers_keep_their_volume_and_world_units():
    volume = _volume(PERMUTATIONS[1], TILTS_DEG[0])
    layer = Layer.create(*image_layer(volume, name="scan"))
    assert layer_volume(layer) is volume
    assert layer.name == "scan"
    assert tuple(layer.axis_labels) == ("R", "A", "S")
    assert all(str(u) == "millimeter" for u in layer.units)


def test_float_labels_become_integers():
    volume = Volume(np.array([[[0.0, 1.0], [2.0, 2.9999]]], dtype=np.float32), np.eye(4))
    data, _, kind = labels_layer(volume)
    assert kind == "labels"
    assert np.issubdtype(data.dtype, np.integer)
    np.testing.assert_array_equal(data, [[[0, 1], [2, 3]]])


def test_contrast_limits_ct_uses_the_dicom_window_else_soft_tissue():
    data = np.full((4, 4, 4), 3000, dtype=np.int16)
    assert contrast_limits(Volume(data, np.eye(4), modality="CT", window=(40.0, 400.0))) == (-160.0, 240.0)
    assert CT_PRESETS[CT_DEFAULT_PRESET] == (400.0, 50.0)  # soft tissue: W 400 / L 50 HU
    assert contrast_limits(Volume(data, np.eye(4), modality="CT")) == (-150.0, 250.0)


def test_contrast_limits_mr_are_the_1st_and_99th_percentiles():
    data = np.random.default_rng(2).gamma(2.0, 100.0, size=(30, 40, 50)).astype(np.float32)
    assert data.size <= SUBSAMPLE_VOXELS  # small enough to be read whole: compare with numpy exactly
    expected = np.percentile(data.astype(np.float64), [1, 99])
    np.testing.assert_allclose(contrast_limits(Volume(data, np.eye(4), modality="MR")), expected)


def test_contrast_limits_of_a_constant_image_are_a_valid_range():
    low, high = contrast_limits(Volume(np.zeros((3, 3, 3), np.uint8), np.eye(4)))
    assert high > low


def test_contrast_limits_read_a_subsample_not_the_volume():
    class CountingArray:
        """An array-like that records how many voxels were read."""

        def __init__(self, array):
            self.array, self.shape, self.dtype, self.ndim, self.read = array, array.shape, array.dtype, 3, 0

        def __getitem__(self, key):
            out = self.array[key]
            self.read += np.size(out)
            return out

    big = CountingArray(np.broadcast_to(np.arange(512, dtype=np.int16), (512, 512, 512)))
    contrast_limits(Volume(big, np.eye(4), modality="MR"))
    assert 0 < big.read <= SUBSAMPLE_VOXELS


def test_a_lazy_array_that_must_be_reordered_stays_lazy():
    class LazyArray:
        """shape/dtype/ndim/__getitem__ only, like engines.io's scaled NIfTI proxy; refuses a full read."""

        def __init__(self, array):
            self.array, self.shape, self.dtype, self.ndim, self.read = array, array.shape, array.dtype, 3, 0

        def __getitem__(self, key):
            out = self.array[key]
            self.read += np.size(out)
            return out

        def __array__(self, dtype=None, copy=None):
            raise AssertionError("the whole array was read")

    source = np.random.default_rng(3).normal(size=(192, 128, 128)).astype(np.float32)
    lazy = LazyArray(source)
    volume = Volume(lazy, _affine(PERMUTATIONS[2], TILTS_DEG[0]), modality="MR")
    layer = Layer.create(*image_layer(volume))
    lazy.read = 0
    index = (5, 6, 7)
    world = (volume.affine @ [*index, 1.0])[:3]
    at = tuple(np.rint(layer.world_to_data(world)).astype(int))
    assert np.asarray(layer.data[at]) == source[index]
    assert lazy.read <= np.prod(LAZY_CHUNKS)  # one block, not the volume


@pytest.mark.parametrize("perm", PERMUTATIONS[:2])
def test_a_large_volume_gets_coarser_levels_that_are_views_of_its_voxels(perm, monkeypatch):
    monkeypatch.setattr(app.layers, "PREVIEW_VOXELS", 1000)  # 20 x 24 x 30 stands in for a 512^3 volume
    volume = _volume(perm, (0, 0, 0), shape=(20, 24, 30))
    data, kwargs, kind = image_layer(volume)
    assert kind == "image" and kwargs["multiscale"]
    assert [level.shape for level in data] == [(20, 24, 30), (10, 12, 15), (5, 6, 8)]  # 14400, 1800, 240
    full, _ = canonical_view(volume)
    for k, level in enumerate(data):
        assert np.shares_memory(level, volume.data)  # nothing copied
        np.testing.assert_array_equal(level, full[:: 2**k, :: 2**k, :: 2**k])  # each value a voxel's own
    layer = Layer.create(data, kwargs, kind)
    assert layer.multiscale and full_resolution(layer) is data[0]
    for voxel in _voxels(volume.shape):  # level 0 is placed exactly as a single-scale layer would be
        world = (volume.affine @ [*voxel, 1.0])[:3]
        at = tuple(np.rint(layer.world_to_data(world)).astype(int))
        assert full_resolution(layer)[at] == volume.data[voxel]
    small, small_kwargs, _ = image_layer(_volume(perm, (0, 0, 0), shape=(10, 10, 10)))
    assert isinstance(small, np.ndarray) and "multiscale" not in small_kwargs


def test_a_dicom_folders_layer_is_named_after_the_folder_and_its_series(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    uid = "1.2.826.0.1.3680043.8.498.1234567890"

    def name(**meta):
        return Layer.create(*image_layer(Volume(np.zeros((2, 3, 4), np.int16), np.eye(4), meta=meta,
                                                source=str(folder)))).name

    # two series of one folder can be told apart by name
    assert name(series_uid=uid, series_description="T2 axial") == "study (T2 axial)"
    assert name(series_uid=uid) == "study (series …34567890)"
    # a file keeps its stem, series or not
    assert Layer.create(*image_layer(Volume(np.zeros((2, 3, 4), np.int16), np.eye(4),
                                            meta={"series_uid": uid, "series_description": "T2 axial"},
                                            source=str(tmp_path / "ct.nii.gz")))).name == "ct"
