"""LPS <-> RAS affines checked against SimpleITK's own index -> point mapping."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from engines.errors import InputError
from engines.io.geometry import check_affine, dicom_affine, itk_affine, itk_geometry_3d
from tests.engines.io.conftest import itk_ras_affine


@pytest.mark.parametrize("seed", range(4))
def test_itk_affine_matches_simpleitk_points(seed):
    rng = np.random.default_rng(seed)
    image = sitk.Image(3, 4, 5, sitk.sitkUInt8)
    image.SetSpacing(tuple(rng.uniform(0.2, 3.0, 3)))
    image.SetOrigin(tuple(rng.uniform(-100, 100, 3)))
    image.SetDirection(tuple(Rotation.random(random_state=seed).as_matrix().ravel()))
    affine = itk_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    np.testing.assert_allclose(affine, itk_ras_affine(image), atol=1e-9)
    index = (2, 1, 4)
    lps = np.array(image.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose((affine @ [*index, 1])[:3], lps * [-1, -1, 1], atol=1e-9)


def test_itk_geometry_of_2d_and_4d_images():
    origin, spacing, direction = itk_geometry_3d((1.0, 2.0), (0.5, 0.25), (0.0, 1.0, 1.0, 0.0))
    assert origin == [1.0, 2.0, 0.0] and spacing == [0.5, 0.25, 1.0]
    np.testing.assert_array_equal(np.reshape(direction, (3, 3)), [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    origin, spacing, direction = itk_geometry_3d((1, 2, 3, 4), (1, 1, 2, 9), np.eye(4).ravel())
    assert origin == [1, 2, 3] and spacing == [1, 1, 2]


def test_dicom_affine_maps_pixels_as_the_standard_says():
    # DICOM PS3.3 C.7.6.2.1.1: P = S + X * dj * i + Y * di * j for column i, row j
    position, orientation, pixel_spacing = [10.0, -20.0, 30.0], [0, 1, 0, 0, 0, -1], [0.8, 0.6]
    affine = dicom_affine(position, orientation, pixel_spacing, slice_spacing=3.0)
    i, j, k = 4, 7, 2
    expected_lps = (np.array(position) + np.array([0, 1, 0]) * 0.6 * i + np.array([0, 0, -1]) * 0.8 * j
                    + np.cross([0, 1, 0], [0, 0, -1]) * 3.0 * k)
    np.testing.assert_allclose((affine @ [i, j, k, 1])[:3], expected_lps * [-1, -1, 1])


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (np.diag([1.0, np.nan, 1.0, 1.0]), "NaN"),
        (np.diag([1.0, 0.0, 1.0, 1.0]), "zero"),
        (np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "singular"),
    ],
)
def test_check_affine_refuses_broken_transforms(affine, message):
    with pytest.raises(InputError, match=message):
        check_affine(affine, "scan.nii")
