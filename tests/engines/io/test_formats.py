"""read_volume's dispatch and the bad inputs every format shares; opening a large file is cheap."""

from __future__ import annotations

import os
import time

import nibabel as nib
import numpy as np
import psutil
import pytest

from engines.errors import InputError
from engines.io import VOLUME_EXTENSIONS, read_volume
from engines.io.formats import volume_extension
from tests.engines.io.conftest import NIBABEL_DATA


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "scan.nii.gz"
    with pytest.raises(InputError, match="no such file or folder") as info:
        read_volume(missing)
    assert info.value.path == str(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("name", ["scan.png", "table.csv", "archive.tar.gz", "README"])
def test_unsupported_extension_lists_what_is_supported(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(InputError, match="unsupported file type") as info:
        read_volume(path)
    for extension in VOLUME_EXTENSIONS:
        assert extension in info.value.problem


def test_path_is_kept_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(NIBABEL_DATA)
    volume = read_volume("anatomical.nii")
    assert volume.source == "anatomical.nii"


def test_series_uid_on_a_file_is_refused():
    with pytest.raises(InputError, match="DICOM folder"):
        read_volume(NIBABEL_DATA / "anatomical.nii", series_uid="1.2.3")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.nii.gz", ".nii.gz"), ("A.NII.GZ", ".nii.gz"), ("a.b.nii", ".nii"), ("x.MHA", ".mha"), ("dicom", "")],
)
def test_volume_extension(name, expected):
    assert volume_extension(name) == expected


def _sparse_nifti(path, shape=(512, 512, 512)) -> int:
    """An uncompressed int16 NIfTI of `shape` whose data are a hole in the file (no disk, no writing time)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_qform(np.diag([0.7, 0.7, 0.8, 1.0]), code=1)
    header.set_sform(np.diag([0.7, 0.7, 0.8, 1.0]), code=1)
    offset = 352
    header.set_data_offset(offset)
    size = offset + int(np.prod(shape)) * 2
    with open(path, "wb") as fobj:
        fobj.write(header.binaryblock + bytes(offset - len(header.binaryblock)))
        fobj.truncate(size)
    return size


def test_512_cubed_nifti_opens_fast_without_copying(tmp_path):
    path = tmp_path / "big.nii"
    size = _sparse_nifti(path)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    start = time.perf_counter()
    volume = read_volume(path)
    plane = np.asarray(volume.data[:, :, 256])  # the first slice a viewer would draw
    elapsed = time.perf_counter() - start
    rss_growth = process.memory_info().rss - rss_before
    assert isinstance(volume.data, np.memmap)
    assert volume.shape == (512, 512, 512)
    assert plane.shape == (512, 512)
    assert elapsed < 2.0
    assert rss_growth < 0.1 * size  # nothing like a copy of the 256 MiB of voxels
    assert os.path.getsize(path) == size


def test_512_cubed_metaimage_opens_fast_without_copying(tmp_path):
    path = tmp_path / "big.mha"
    header = (b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              b"TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = 0.7 0.7 0.8\n"
              b"DimSize = 512 512 512\nElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    size = len(header) + 512**3 * 2
    with open(path, "wb") as fobj:
        fobj.write(header)
        fobj.truncate(size)
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    volume = read_volume(path)
    plane = np.asarray(volume.data[:, :, 256])
    elapsed = time.perf_counter() - start
    assert isinstance(volume.data, np.memmap) and plane.shape == (512, 512)
    assert elapsed < 2.0
    assert psutil.Process().memory_info().rss - rss_before < 0.1 * size
