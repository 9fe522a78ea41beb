"""Shared fixtures for the volume reader tests: bundled reference files and SimpleITK's reading of a file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path as nibabel_data_path

# Found without importing nilearn (slow: it pulls in scikit-learn).
NILEARN_DATA = Path(importlib.util.find_spec("nilearn").origin).parent / "datasets" / "data"
NIBABEL_DATA = Path(nibabel_data_path)
MNI152_FILES = sorted(NILEARN_DATA.glob("mni_icbm152_*.nii.gz"))

# Keys a streamed volume (StreamedVoxels) must index as numpy does, for volumes at least 9 x 5 x 9.
STREAM_KEYS = [np.s_[...], np.s_[:, :, 3], np.s_[2:7, ::3, 1:8:2], np.s_[..., ::-2], np.s_[1, :, -1],
               np.s_[:, 4], np.s_[..., 5:5], np.s_[-3:, 1:-1, 7:2:-3], np.s_[:, :, -8], np.s_[2:2],
               np.s_[np.int64(3), :, np.int32(-2)], np.s_[..., 1, 2], ()]


def itk_ras_affine(image: sitk.Image) -> np.ndarray:
    """SimpleITK's voxel -> RAS+ mm map of `image` (first three axes), measured point by point.

    Independent of engines.io.geometry: ITK is asked where index 0 and the unit steps land (LPS), and the
    answer is flipped to RAS by negating x and y.
    """
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    origin = np.array(image.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, 0.0)))
    affine = np.eye(4)
    affine[:3, 3] = origin
    for axis in range(3):
        step = [0.0, 0.0, 0.0]
        step[axis] = 1.0
        affine[:3, axis] = np.array(image.TransformContinuousIndexToPhysicalPoint(step)) - origin
    affine[:2, :] *= -1
    return affine


def itk_array(image: sitk.Image) -> np.ndarray:
    """SimpleITK's voxels in ITK index order (x, y, z); a 4D image's first volume."""
    array = sitk.GetArrayFromImage(image).transpose()
    return array[..., 0] if array.ndim == 4 else array


def itk_read_series(folder: Path) -> sitk.Image:
    """SimpleITK/GDCM's reading of the (only) series in `folder`."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.fixture(autouse=True)
def _quiet_itk():
    """ITK prints warnings (e.g. "Non uniform sampling") straight to stderr; keep test output readable."""
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject_SetGlobalWarningDisplay(True)
