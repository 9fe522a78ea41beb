"""The Volume's derived geometry: spacing and axis codes come from the affine alone."""

from __future__ import annotations

import numpy as np
import pytest

from engines.volume import Volume


def test_spacing_and_orientation_follow_the_affine():
    # LPS-stored voxels (as DICOM): i -> patient left, j -> posterior, k -> superior; 0.7 x 0.8 x 2.5 mm.
    affine = np.diag([-0.7, -0.8, 2.5, 1.0])
    volume = Volume(np.zeros((4, 5, 6), np.int16), affine)
    assert volume.shape == (4, 5, 6)
    np.testing.assert_allclose(volume.spacing, [0.7, 0.8, 2.5])
    assert volume.orientation == "LPS"


def test_oblique_spacing_is_the_column_norm():
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.5, 2.0, 3.0])
    np.testing.assert_allclose(Volume(np.zeros((2, 2, 2)), affine).spacing, [1.5, 2.0, 3.0])


def test_affine_must_be_4x4():
    with pytest.raises(ValueError, match="4x4"):
        Volume(np.zeros((2, 2, 2)), np.eye(3))
