"""Which voxels a measurement counts: an oblique layer's file voxels while it shows them unchanged."""

from __future__ import annotations

import numpy as np

from app.layers import SHOWN_DIGEST_KEY, image_layer, labels_layer
from app.measured import file_grid
from engines.volume import Volume

_C, _S = np.cos(np.radians(25)), np.sin(np.radians(25))
ROTATION = np.array([[1, 0, 0, 0], [0, _C, -_S, 0], [0, _S, _C, 0], [0, 0, 0, 1.0]])
OBLIQUE = ROTATION @ np.diag([0.8, 1.2, 3, 1.0])


def _labels(affine: np.ndarray) -> Volume:
    labels = np.zeros((12, 10, 6), np.float32)  # float label files are shown rounded
    labels[2:6, 3:7, 1:4] = 2.0
    return Volume(labels, affine, source="seg.nii")


def test_an_unchanged_oblique_labels_layer_is_measured_on_the_files_voxels():
    volume = _labels(OBLIQUE)
    data, kwargs, _ = labels_layer(volume)
    voxels, affine, own = file_grid(data, kwargs["affine"], volume, kwargs["metadata"][SHOWN_DIGEST_KEY],
                                    labels=True)
    assert own and voxels.dtype == np.int32
    np.testing.assert_array_equal(voxels, volume.data.astype(np.int32))
    np.testing.assert_allclose(affine, OBLIQUE)


def test_a_painted_one_is_measured_as_shown():
    volume = _labels(OBLIQUE)
    data, kwargs, _ = labels_layer(volume)
    data[0, 0, 0] = 5
    voxels, affine, own = file_grid(data, kwargs["affine"], volume, kwargs["metadata"][SHOWN_DIGEST_KEY],
                                    labels=True)
    assert not own and voxels is data and affine is kwargs["affine"]


def test_an_image_with_nans_is_unchanged_all_the_same():
    values = np.random.default_rng(0).random((12, 10, 6)).astype(np.float32)
    values[0, 0, 0] = np.nan
    volume = Volume(values, OBLIQUE, source="t2.nii")
    data, kwargs, _ = image_layer(volume)
    assert file_grid(data, kwargs["affine"], volume, kwargs["metadata"][SHOWN_DIGEST_KEY], labels=False)[2]


def test_a_layer_shown_as_stored_carries_no_digest_and_is_measured_as_it_is():
    volume = _labels(np.diag([-0.8, 1.2, 3.0, 1.0]))  # LPS-like, not oblique: reordered, not resampled
    data, kwargs, _ = labels_layer(volume)
    assert SHOWN_DIGEST_KEY not in kwargs["metadata"]
    voxels, _, own = file_grid(data, kwargs["affine"], volume, None, labels=True)
    assert not own and voxels is data
