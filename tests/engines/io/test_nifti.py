"""NIfTI and MGH/MGZ reading and NIfTI writing, checked against nibabel and SimpleITK."""

from __future__ import annotations

import gzip
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from engines.errors import InputError
from engines.io import read_volume, write_volume
from engines.io.nifti import NO_ORIENTATION, ScaledProxy
from engines.volume import Volume
from tests.engines.io.conftest import (
    MNI152_FILES,
    NIBABEL_DATA,
    NILEARN_DATA,
    STREAM_KEYS,
    itk_array,
    itk_ras_affine,
)

NIBABEL_3D = ["anatomical.nii", "reoriented_anat_moved.nii", "resampled_anat_moved.nii", "standard.nii.gz"]
NIBABEL_4D = ["functional.nii", "example4d.nii.gz"]


def _oblique_affine() -> np.ndarray:
    """A rotated, anisotropic, translated affine (not a permutation), as scanners write."""
    angle = np.radians(17.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 1.1, 2.5])
    affine[:3, 3] = [-30.0, 12.5, 40.0]
    return affine


@pytest.mark.parametrize("path", MNI152_FILES, ids=lambda p: p.name)
def test_mni152_matches_nibabel_and_simpleitk(path):
    assert len(MNI152_FILES) == 3  # T1, GM, WM shipped in nilearn
    volume = read_volume(path)
    img = nib.load(path)
    itk = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.affine, img.affine, atol=1e-4)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(itk))
    assert volume.shape == (197, 233, 189)
    assert volume.orientation == "RAS"
    np.testing.assert_allclose(volume.spacing, [1, 1, 1])


@pytest.mark.parametrize("name", NIBABEL_3D + NIBABEL_4D)
def test_nibabel_test_files_match_nibabel_and_simpleitk(name):
    path = NIBABEL_DATA / name
    volume = read_volume(path)
    img = nib.load(path)
    itk = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.affine, img.affine, atol=1e-4)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    expected = img.get_fdata()
    expected = expected[..., 0] if expected.ndim == 4 else expected
    np.testing.assert_allclose(np.asarray(volume.data, dtype=np.float64), expected, rtol=1e-6)
    assert volume.shape == expected.shape
    assert bool(volume.warnings) == (img.ndim == 4)


@pytest.mark.parametrize("mgz", [NILEARN_DATA / "test.mgz", NIBABEL_DATA / "test.mgz"],
                         ids=["nilearn", "nibabel"])
def test_mgz_matches_nibabel(mgz):
    volume = read_volume(mgz)
    img = nib.load(mgz)
    np.testing.assert_allclose(volume.affine, img.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), np.asarray(img.dataobj)[..., 0])
    assert volume.meta["format"] == "MGH"
    assert volume.warnings == [f"4D image with {img.shape[3]} volumes: only the first is used"]


def test_uncompressed_mgh_is_memory_mapped(tmp_path):
    data = np.arange(24 * 20 * 16, dtype=np.float32).reshape(24, 20, 16)
    path = tmp_path / "brain.mgh"
    nib.MGHImage(data, _oblique_affine()).to_filename(path)
    volume = read_volume(path)
    assert isinstance(volume.data, np.memmap)
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, nib.load(path).affine, atol=1e-4)


def test_uncompressed_nifti_is_memory_mapped_read_only(tmp_path):
    data = np.arange(64 * 48 * 40, dtype=np.int16).reshape(64, 48, 40)
    path = tmp_path / "ct.nii"
    nib.Nifti1Image(data, _oblique_affine()).to_filename(path)
    volume = read_volume(path)
    assert isinstance(volume.data, np.memmap)
    assert not volume.data.flags.writeable  # the user's file cannot be changed through the volume
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(sitk.ReadImage(str(path))), atol=1e-4)


def test_scaled_nifti_stays_lazy_and_scales_what_is_read(tmp_path):
    stored = np.arange(30 * 20 * 10, dtype=np.int16).reshape(30, 20, 10)
    img = nib.Nifti1Image(stored, _oblique_affine())
    img.header.set_slope_inter(0.5, -1024.0)
    path = tmp_path / "scaled.nii"
    img.to_filename(path)
    volume = read_volume(path)
    assert isinstance(volume.data, ScaledProxy)
    expected = stored * 0.5 - 1024.0
    assert volume.data.shape == expected.shape
    np.testing.assert_allclose(volume.data[:, :, 3], expected[:, :, 3])
    np.testing.assert_allclose(np.asarray(volume.data), expected)
    assert volume.data[:, :, 3].dtype == volume.data.dtype
    np.testing.assert_allclose(np.asarray(volume.data), itk_array(sitk.ReadImage(str(path))))


@pytest.mark.parametrize("name", ["scaled.nii", "scaled.nii.gz"])
def test_a_scaled_4d_file_shows_its_first_volume_scaled(tmp_path, name):
    stored = np.arange(6 * 5 * 4 * 3, dtype=np.int16).reshape(6, 5, 4, 3)
    img = nib.Nifti1Image(stored, _oblique_affine())
    img.header.set_slope_inter(2.0, -100.0)
    img.to_filename(tmp_path / name)
    volume = read_volume(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(volume.data), stored[..., 0] * 2.0 - 100.0)
    np.testing.assert_array_equal(volume.data[1:3, :, 2], stored[1:3, :, 2, 0] * 2.0 - 100.0)


def test_a_compressed_scaled_file_is_held_as_stored_and_scaled_as_read(tmp_path):
    stored = np.random.default_rng(2).integers(0, 4000, (30, 20, 10)).astype(np.int16)
    img = nib.Nifti1Image(stored, _oblique_affine())
    img.header.set_slope_inter(1.0, -1024.0)
    img.to_filename(tmp_path / "ct.nii.gz")
    volume = read_volume(tmp_path / "ct.nii.gz")
    assert isinstance(volume.data, ScaledProxy)
    assert volume.data._stored.dtype == np.int16  # 2 bytes a voxel in memory, not float64's 8
    reference = nib.load(tmp_path / "ct.nii.gz").dataobj
    assert volume.data.dtype == np.asarray(reference).dtype
    np.testing.assert_array_equal(volume.data[4:9], np.asarray(reference)[4:9])
    np.testing.assert_array_equal(np.asarray(volume.data), np.asarray(reference))


def test_units_in_metres_are_converted_like_itk(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.diag([0.001, 0.0012, 0.002, 1.0]))
    img.header.set_xyzt_units(xyz="meter")
    path = tmp_path / "metres.nii"
    img.to_filename(path)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.spacing, [1.0, 1.2, 2.0], atol=1e-6)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(sitk.ReadImage(str(path))), atol=1e-4)
    assert "meter" in volume.warnings[0]


def test_2d_nifti_reads_as_one_slice(tmp_path):
    path = tmp_path / "slice.nii"
    nib.Nifti1Image(np.ones((7, 9), np.uint8), np.diag([0.5, 0.5, 1, 1])).to_filename(path)
    volume = read_volume(path)
    assert volume.shape == (7, 9, 1)


@pytest.mark.parametrize(("source", "name", "right"),
                         [(NIBABEL_DATA / "test.mgz", "scan.mgh", ".mgz"),
                          (NIBABEL_DATA / "example4d.nii.gz", "scan.nii", ".nii.gz")])
def test_a_compressed_file_named_as_uncompressed_is_refused_saying_so(tmp_path, source, name, right):
    shutil.copy(source, tmp_path / name)
    with pytest.raises(InputError, match=f"gzip-compressed, so its name should end in {right}"):
        read_volume(tmp_path / name)


def test_write_then_read_round_trip(tmp_path):
    data = np.random.default_rng(0).normal(size=(12, 10, 8)).astype(np.float32)
    original = Volume(data=data, affine=_oblique_affine(), modality="MR", source="memory")
    for name in ("out.nii", "out.nii.gz"):
        write_volume(original, tmp_path / name)
        back = read_volume(tmp_path / name)
        np.testing.assert_array_equal(np.asarray(back.data), data)
        np.testing.assert_allclose(back.affine, original.affine, atol=1e-5)
        np.testing.assert_allclose(itk_ras_affine(sitk.ReadImage(str(tmp_path / name))), original.affine,
                                   atol=1e-4)
    assert sorted(os.listdir(tmp_path)) == ["out.nii", "out.nii.gz"]  # no temporary files left


def test_a_sheared_affine_is_written_as_sform_only(tmp_path):
    """A gantry tilt's shear has no qform; a qform made rigid would place it mm away in qform-first readers
    (ITK), so it is not written: ITK refuses the file rather than misplace it."""
    tilt = np.deg2rad(20)
    affine = np.array([[0.8, 0, 0, -50], [0, 0.8, 2.5 * np.sin(tilt), -60], [0, 0, 2.5 * np.cos(tilt), 10],
                       [0, 0, 0, 1]])
    write_volume(Volume(data=np.zeros((30, 30, 20), np.int16), affine=affine), tmp_path / "tilt.nii.gz")
    header = nib.load(tmp_path / "tilt.nii.gz").header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (0, 1)
    np.testing.assert_allclose(read_volume(tmp_path / "tilt.nii.gz").affine, affine, atol=1e-5)
    with pytest.raises(RuntimeError, match="orthonormal"):
        sitk.ReadImage(str(tmp_path / "tilt.nii.gz"))
    write_volume(Volume(data=np.zeros((30, 30, 20), np.int16), affine=_oblique_affine()), tmp_path / "o.nii")
    header = nib.load(tmp_path / "o.nii").header
    assert int(header["qform_code"]) == 1
    np.testing.assert_allclose(header.get_qform(), _oblique_affine(), atol=1e-5)


def test_an_oblique_lps_volume_keeps_its_qform(tmp_path):
    """A DICOM-derived grid (LPS flipped to RAS: a rotation near 180 degrees, where the float32 quaternion
    is least precise) tilted slightly: no shear, so the qform is written as ever."""
    from scipy.spatial.transform import Rotation

    rotation = np.diag([-1.0, -1.0, 1.0]) @ Rotation.from_euler("xyz", [2, -1.5, 1], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.7, 2.5])
    affine[:3, 3] = [180.0, 200.0, -90.0]
    write_volume(Volume(data=np.zeros((512, 512, 60), np.int16), affine=affine), tmp_path / "ct.nii.gz")
    header = nib.load(tmp_path / "ct.nii.gz").header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 1)
    np.testing.assert_allclose(header.get_sform(), affine, atol=1e-4)


def test_write_a_big_endian_memory_mapped_volume(tmp_path):
    anatomical = read_volume(NIBABEL_DATA / "anatomical.nii")  # big-endian int16, memory-mapped
    write_volume(anatomical, tmp_path / "copy.nii.gz")
    back = read_volume(tmp_path / "copy.nii.gz")
    np.testing.assert_allclose(back.affine, anatomical.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(anatomical.data))


def test_write_refuses_to_overwrite_the_source(tmp_path):
    path = tmp_path / "mine.nii"
    shutil.copy(NIBABEL_DATA / "anatomical.nii", path)
    before = path.read_bytes()
    volume = read_volume(path)
    with pytest.raises(InputError, match="overwrite"):
        write_volume(volume, path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["out.nrrd", "out.img", "out"])
def test_write_refuses_other_formats(tmp_path, name):
    volume = Volume(data=np.zeros((2, 2, 2)), affine=np.eye(4))
    with pytest.raises(InputError, match=r"\.nii"):
        write_volume(volume, tmp_path / name)


def _gz_nifti(tmp_path, shape=(64, 64, 32)):
    path = tmp_path / "full.nii.gz"
    data = np.random.default_rng(1).integers(-1000, 2000, size=shape).astype(np.int16)
    nib.Nifti1Image(data, np.eye(4)).to_filename(path)
    return path


def test_truncated_nii_gz_is_reported_at_read_time(tmp_path):
    path = _gz_nifti(tmp_path)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as info:
        read_volume(truncated)
    assert info.value.path == str(truncated)


@pytest.mark.parametrize("name", ["series.nii.gz", "frames.mgz"])
def test_a_compressed_4d_file_cut_in_a_later_volume_is_refused_as_an_uncompressed_one_is(tmp_path, name):
    """Its first volume is whole, but the file is damaged: refused, not shown as if nothing were wrong."""
    save = nib.MGHImage if name.endswith(".mgz") else nib.Nifti1Image
    data = np.random.default_rng(2).integers(-1000, 2000, (16, 12, 10, 3)).astype(np.int32)
    save(data, np.eye(4)).to_filename(tmp_path / name)
    path = tmp_path / f"cut_{name}"
    whole = gzip.decompress((tmp_path / name).read_bytes())
    path.write_bytes(gzip.compress(whole[: len(whole) * 4 // 5]))  # a valid gzip stream, short of data
    with pytest.raises(InputError, match="truncated") as info:
        read_volume(path)
    assert info.value.path == str(path)


def test_truncated_uncompressed_nii_is_reported(tmp_path):
    path = tmp_path / "whole.nii"
    nib.Nifti1Image(np.ones((32, 32, 16), np.int16), np.eye(4)).to_filename(path)
    truncated = tmp_path / "short.nii"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated"):
        read_volume(truncated)


@pytest.mark.parametrize("bad", [0.0, np.nan])
def test_zero_or_nan_pixdim_is_refused(tmp_path, bad):
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), None)
    img.header["pixdim"][1:4] = [1.0, bad, 1.0]
    path = tmp_path / "bad_pixdim.nii.gz"
    img.to_filename(path)
    with pytest.raises(InputError, match="pixdim") as info:
        read_volume(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("bad", [0.0, np.nan])
def test_a_zero_or_nan_pixdim_beside_an_sform_is_read_by_the_sform_but_refused_beside_a_qform(tmp_path, bad):
    """nibabel places voxels by the sform when its code is set, never looking at pixdim; a qform is built
    on pixdim."""
    affine = np.array([[0.7, 0, 0, 1], [0, 0.8, 0, 2], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    for name, sform_code, qform_code in (("sform.nii", 2, 0), ("qform.nii", 0, 1)):
        img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), None)
        img.set_sform(affine, code=sform_code)
        img.set_qform(affine, code=qform_code)
        img.to_filename(tmp_path / name)  # nibabel writes pixdim from the affine: changed in the file
        content = bytearray((tmp_path / name).read_bytes())
        content[84:88] = np.float32(bad).tobytes()  # pixdim[2]
        (tmp_path / name).write_bytes(bytes(content))
    volume = read_volume(tmp_path / "sform.nii")
    np.testing.assert_allclose(volume.affine, affine)
    assert volume.warnings == []
    with pytest.raises(InputError, match="pixdim"):
        read_volume(tmp_path / "qform.nii")


def test_a_header_without_orientation_is_read_as_nibabel_does_with_a_warning(tmp_path):
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), None)
    img.header["pixdim"][1:4] = [0.7, 0.8, 2.5]
    img.to_filename(tmp_path / "bare.nii")
    assert (img.header["qform_code"], img.header["sform_code"]) == (0, 0)
    volume = read_volume(tmp_path / "bare.nii")
    np.testing.assert_allclose(volume.affine, nib.load(tmp_path / "bare.nii").affine)
    assert volume.warnings == [NO_ORIENTATION]


def test_singular_sform_is_refused(tmp_path):
    affine = np.eye(4)
    affine[:3, 2] = affine[:3, 0]  # the third axis repeats the first
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), affine)
    path = tmp_path / "singular.nii"
    img.to_filename(path)
    with pytest.raises(InputError, match="singular"):
        read_volume(path)


def test_text_file_named_nii_is_refused(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("not an image at all\n" * 40)
    with pytest.raises(InputError, match="not a readable NIfTI"):
        read_volume(path)


def test_gzip_of_text_named_nii_gz_is_refused(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_bytes(gzip.compress(b"plain text, no NIfTI header here\n" * 40))
    with pytest.raises(InputError):
        read_volume(path)


def _with_header_field(tmp_path, name: str, offset: int, fmt: str, value) -> str:
    """A valid 5x6x7 int16 NIfTI with one header field overwritten at its byte offset."""
    import struct

    path = tmp_path / name
    nib.Nifti1Image(np.arange(210, dtype=np.int16).reshape(5, 6, 7), np.eye(4)).to_filename(path)
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return str(path)


@pytest.mark.parametrize(("field", "offset", "fmt", "value", "message"), [
    ("dim0", 40, "<h", 9, "not a readable NIfTI"),  # more than 7 dimensions
    ("datatype", 70, "<h", 999, "data code 999"),
    ("negative dim", 44, "<h", -6, "cannot be read"),
    ("zero dim", 46, "<h", 0, "axis of length 0"),
])
def test_damaged_headers_are_named_not_crashed_on(tmp_path, field, offset, fmt, value, message):
    path = _with_header_field(tmp_path, f"{field.replace(' ', '_')}.nii", offset, fmt, value)
    with pytest.raises(InputError, match=message) as info:
        read_volume(path)
    assert info.value.path == path


@pytest.mark.parametrize("name", ["random.mgz", "text.mgh"])
def test_damaged_mgh_is_named(tmp_path, name):
    path = tmp_path / name
    payload = os.urandom(1000)
    path.write_bytes(gzip.compress(payload) if name.endswith(".mgz") else b"hello\n")
    with pytest.raises(InputError, match="not a readable MGH"):
        read_volume(path)


@pytest.mark.parametrize("dtype", [np.complex64, np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])],
                         ids=["complex", "rgb"])
def test_colour_and_complex_nifti_are_refused(tmp_path, dtype):
    path = tmp_path / "odd.nii"
    nib.Nifti1Image(np.zeros((4, 5, 6), dtype), np.eye(4)).to_filename(path)
    with pytest.raises(InputError, match="scalar volumes"):
        read_volume(path)


@pytest.mark.parametrize("name", ["five_d.nii", "five_d.nii.gz"])
def test_trailing_dimensions_of_one_are_a_3d_volume(tmp_path, name):
    data = np.arange(210, dtype=np.int16).reshape(5, 6, 7)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    nib.Nifti1Image(data.reshape(5, 6, 7, 1, 1), affine).to_filename(tmp_path / name)
    volume = read_volume(tmp_path / name)
    assert volume.shape == (5, 6, 7) and volume.warnings == []
    np.testing.assert_array_equal(np.asarray(volume.data), data)
    np.testing.assert_allclose(volume.affine, affine)


def test_a_folder_that_cannot_be_written_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.nii.gz.abc123.nii.gz"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(InputError, match="cannot write into this folder \\(Permission denied\\)") as info:
        write_volume(Volume(np.zeros((2, 2, 2), np.int16), np.eye(4)), tmp_path / "out.nii.gz")
    assert info.value.path == str(tmp_path)


@pytest.mark.parametrize("name, dtype, scaled, volumes", [
    ("ct.nii.gz", "<i2", False, 1), ("big_endian.nii.gz", ">f4", False, 1), ("scaled.nii.gz", "<i2", True, 1),
    ("series.nii.gz", "<u2", False, 3), ("brain.mgz", ">f4", False, 1), ("brain4d.mgz", ">i4", False, 2)])
def test_a_streamed_compressed_file_indexes_like_the_file_read_whole(tmp_path, name, dtype, scaled, volumes):
    from engines.io.lazy_arrays import StreamedVoxels

    stored = np.random.default_rng(4).integers(-500, 3000, (11, 9, 10, volumes)).astype(dtype)
    stored = stored[..., 0] if volumes == 1 else stored
    image_type = nib.MGHImage if name.endswith(".mgz") else nib.Nifti1Image
    img = image_type(stored, _oblique_affine())
    if scaled:
        img.header.set_slope_inter(0.5, -1024.0)
    img.to_filename(tmp_path / name)
    whole, streamed = read_volume(tmp_path / name), read_volume(tmp_path / name, stream=True)
    voxels = streamed.data._stored if scaled else streamed.data
    assert isinstance(voxels, StreamedVoxels)
    assert streamed.data.shape == whole.data.shape == stored.shape[:3]
    assert streamed.data.dtype == np.asarray(whole.data).dtype.newbyteorder("=")  # native byte order
    np.testing.assert_allclose(streamed.affine, whole.affine)
    assert streamed.warnings == whole.warnings
    reference = np.asarray(whole.data)
    for key in STREAM_KEYS:
        np.testing.assert_array_equal(streamed.data[key], reference[key], err_msg=str(key))
    np.testing.assert_array_equal(np.asarray(streamed.data), reference)


def test_streamed_slabs_in_file_order_decompress_the_file_once(tmp_path, monkeypatch):
    from engines.io import nifti

    stored = np.arange(16 * 12 * 20, dtype=np.int16).reshape(16, 12, 20)
    nib.Nifti1Image(stored, np.eye(4)).to_filename(tmp_path / "ct.nii.gz")
    opened = []

    class CountingOpener(nifti.ImageOpener):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

        def readinto(self, buffer):
            decompressed.append(got := super().readinto(buffer))
            return got

    decompressed: list[int] = []
    monkeypatch.setattr(nifti, "ImageOpener", CountingOpener)
    data = read_volume(tmp_path / "ct.nii.gz", stream=True).data
    opened.clear(), decompressed.clear()
    for start in range(0, 20, 3):
        np.testing.assert_array_equal(data[:, :, start:start + 3], stored[:, :, start:start + 3])
    header = nib.load(tmp_path / "ct.nii.gz").dataobj.offset  # decompressed and dropped
    assert len(opened) == 1 and sum(decompressed) == header + stored.nbytes  # one pass, nothing read twice
    np.testing.assert_array_equal(data[:, :, 2], stored[:, :, 2])  # behind the stream: started again
    assert len(opened) == 2


def test_a_truncated_streamed_file_is_named_when_its_end_is_read(tmp_path):
    path = _gz_nifti(tmp_path)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    volume = read_volume(truncated, stream=True)  # nothing decompressed yet
    read = []
    with pytest.raises(InputError, match="truncated") as info:
        for plane in range(volume.shape[2]):
            read.append(volume.data[:, :, plane])
    assert info.value.path == str(truncated)
    assert 8 < len(read) < volume.shape[2]  # the planes before the damage were read, then it was found


@pytest.mark.parametrize("shape", [(20, 16, 12), (200, 160), (20, 16, 12, 3)], ids=["3D", "2D", "4D"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_changed_byte_in_a_compressed_file_is_found_by_gzips_checksum(tmp_path, stream, shape):
    """Stored (uncompressed) deflate blocks: a changed byte decompresses to a wrong voxel without complaint;
    only the checksum at the stream's end tells (of a 4D file, after the volumes not shown)."""
    data = np.random.default_rng(6).integers(0, 3000, shape).astype(np.int16)
    nib.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "whole.nii")
    damaged = bytearray(gzip.compress((tmp_path / "whole.nii").read_bytes(), compresslevel=0))
    damaged[len(damaged) // 2] ^= 0x01
    path = tmp_path / "changed.nii.gz"
    path.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="corrupt") as info:
        volume = read_volume(path, stream=stream)
        for start in range(0, volume.shape[2], 5):
            volume.data[:, :, start:start + 5]
    assert info.value.path == str(path)


@pytest.mark.parametrize("after", [b"\n", b"junk after the data", b"\0" * 512, gzip.compress(b"more")])
@pytest.mark.parametrize("stream", [False, True])
def test_bytes_after_the_compressed_data_are_left_alone_as_nibabel_does(tmp_path, stream, after):
    data = np.random.default_rng(9).integers(0, 3000, (9, 8, 7)).astype(np.int16)
    nib.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "ct.nii.gz")
    path = tmp_path / "padded.nii.gz"
    path.write_bytes((tmp_path / "ct.nii.gz").read_bytes() + after)
    volume = read_volume(path, stream=stream)
    parts = [volume.data[:, :, k:k + 3] for k in range(0, 7, 3)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=2), data)


def test_a_whole_compressed_read_holds_the_volume_once(tmp_path):
    import tracemalloc

    data = np.random.default_rng(7).integers(-1000, 1000, (128, 128, 128)).astype(">i2")  # 4 MiB
    nib.MGHImage(data, np.eye(4)).to_filename(tmp_path / "big_endian.mgz")
    tracemalloc.start()
    try:
        volume = read_volume(tmp_path / "big_endian.mgz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(volume.data, data)
    assert peak < 1.5 * data.nbytes  # no second copy: gzip's pieces and an in-place byte swap


def test_a_streamed_pass_holds_about_two_slabs_not_the_volume(tmp_path):
    import tracemalloc

    data = np.random.default_rng(7).integers(-1000, 1000, (128, 128, 64)).astype(np.int16)  # 2 MiB
    nib.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "ct.nii.gz")
    volume = read_volume(tmp_path / "ct.nii.gz", stream=True)
    tracemalloc.start()
    try:
        for start in range(0, 64, 4):  # 128 KiB a slab
            part = volume.data[:, :, start:start + 4]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(part, data[:, :, 60:])
    assert peak < data.nbytes / 3  # two slabs and gzip's buffers


@pytest.mark.parametrize("key", [np.s_[:, None, :, 2], np.s_[..., None], np.s_[..., [1, 2]], np.s_[True],
                                 np.s_[..., np.array([0, 3])], np.s_[0, 0, 0, 0], np.s_[..., ..., 1]])
def test_a_streamed_file_refuses_the_indexing_it_does_not_do(tmp_path, key):
    nib.Nifti1Image(np.zeros((5, 4, 6), np.int16), np.eye(4)).to_filename(tmp_path / "ct.nii.gz")
    with pytest.raises((TypeError, IndexError)):
        read_volume(tmp_path / "ct.nii.gz", stream=True).data[key]
