"""Single DICOM files (pydicom's bundled real scans) and multi-frame files, against SimpleITK/GDCM."""

from __future__ import annotations

import shutil
from copy import deepcopy

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from engines.errors import InputError
from engines.io import read_volume
from tests.engines.io.conftest import itk_array, itk_ras_affine
from tests.engines.io.dicom_factory import (
    OBLIQUE_IOP,
    SeriesSpec,
    dicom_text_file,
    ramp_values,
    write_enhanced,
)

# Real single-slice scans shipped with pydicom, in several transfer syntaxes.
BUNDLED = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
           "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "693_J2KI.dcm"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_file_matches_simpleitk(name):
    path = get_testdata_file(name)
    volume = read_volume(path)
    itk = sitk.ReadImage(path)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(itk))
    assert volume.data.dtype.isnative
    assert volume.shape[2] == 1


def test_ct_small_is_in_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleIntercept) == -1024
    volume = read_volume(path)
    np.testing.assert_array_equal(np.asarray(volume.data)[:, :, 0], ds.pixel_array.T.astype(np.int32) - 1024)
    assert volume.modality == "CT"
    assert volume.meta["patient_position"] == "FFS"
    np.testing.assert_allclose(volume.spacing, [0.661468, 0.661468, 5.0])  # SpacingBetweenSlices 5


def test_mr_small_window_and_meta():
    volume = read_volume(get_testdata_file("MR_small.dcm"))
    assert volume.window == (600.0, 1600.0)
    assert volume.modality == "MR"
    assert volume.meta["slice_thickness"] == pytest.approx(0.8)
    assert volume.meta["sop_class"] == "MR Image Storage"


def test_jpeg_ls_decodes_to_the_same_values_as_uncompressed():
    plain = read_volume(get_testdata_file("MR_small.dcm"))
    jpeg_ls = read_volume(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(np.asarray(jpeg_ls.data), np.asarray(plain.data))


def test_gdcm_fallback_keeps_rescale_applied_once(monkeypatch):
    """When pydicom cannot decode, GDCM does; the intercept must still be applied exactly once."""
    expected = np.asarray(read_volume(get_testdata_file("CT_small.dcm")).data)

    def no_decoder(self):
        raise RuntimeError("no plugin available")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_decoder))
    fallback = read_volume(get_testdata_file("CT_small.dcm"))
    np.testing.assert_array_equal(np.asarray(fallback.data), expected)


def test_undecodable_transfer_syntax_is_named(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K: no decoder installed here
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])
    path = tmp_path / "htj2k.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="High-Throughput JPEG 2000") as info:
        read_volume(path)
    assert info.value.path == str(path)


def test_rt_dose_multiframe_geometry_and_dose_scaling():
    path = get_testdata_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    volume = read_volume(path)
    itk = sitk.ReadImage(path)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    # GDCM leaves dose in stored units; Tessera applies DoseGridScaling
    np.testing.assert_allclose(np.asarray(volume.data), itk_array(itk) * float(ds.DoseGridScaling), rtol=1e-6)
    assert volume.shape == (10, 10, 15)
    assert volume.meta["units"] == ds.DoseUnits == "RELATIVE"


def test_enhanced_multiframe_matches_truth_and_simpleitk(tmp_path):
    spec = SeriesSpec(ramp_values((6, 5, 7)), iop=OBLIQUE_IOP, slope=2.0, intercept=-1000.0)
    path = write_enhanced(tmp_path / "enhanced.dcm", spec)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    itk = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(itk))
    assert volume.window == (40.0, 400.0)
    assert volume.meta["frames"] == 7


def test_enhanced_multiframe_with_frames_out_of_order(tmp_path):
    spec = SeriesSpec(ramp_values((6, 5, 7)), iop=OBLIQUE_IOP)
    path = write_enhanced(tmp_path / "shuffled.dcm", spec, frame_order=[3, 1, 0, 6, 5, 2, 4])
    volume = read_volume(path)
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())


@pytest.mark.parametrize(("group", "keyword", "values"), [
    ("FrameContentSequence", "TemporalPositionIndex", (2, 1)),  # the second phase's frames come first
    ("MREchoSequence", "EffectiveEchoTime", (4.5, 9.0)),
])
def test_an_enhanced_file_of_several_volumes_gives_the_first_with_a_warning(tmp_path, group, keyword, values):
    """Echoes or phases stored as one enhanced multi-frame file, as a series of files gives its first."""
    spec = SeriesSpec(ramp_values((6, 5, 4)), iop=OBLIQUE_IOP)
    ds = pydicom.dcmread(write_enhanced(tmp_path / "one.dcm", spec, frame_order=[2, 0, 3, 1]))
    frames = ds.pixel_array
    items = []
    for value in values:  # the same positions again, with other values (+100) for the other volume
        for item in ds.PerFrameFunctionalGroupsSequence:
            copy = deepcopy(item)
            label = pydicom.Dataset()
            setattr(label, keyword, value)
            setattr(copy, group, pydicom.Sequence([label]))
            items.append(copy)
    first = values.index(min(values))
    stacked = np.concatenate([frames + 100 * (i != first) for i in range(len(values))]).astype(frames.dtype)
    ds.PerFrameFunctionalGroupsSequence, ds.NumberOfFrames = pydicom.Sequence(items), len(items)
    ds.PixelData = stacked.tobytes()
    ds.save_as(tmp_path / "volumes.dcm", enforce_file_format=True)
    volume = read_volume(tmp_path / "volumes.dcm")
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    assert volume.warnings == [f"the series holds 2 volumes at the same slice positions ({keyword} "
                               f"{min(values):g}, {max(values):g}); showing {keyword} {min(values):g}"]


def test_enhanced_multiframe_in_a_folder(tmp_path):
    spec = SeriesSpec(ramp_values((6, 5, 4)))
    write_enhanced(tmp_path / "one.dcm", spec)
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    assert volume.source == str(tmp_path)


def test_enhanced_multiframe_with_missing_frame_position(tmp_path):
    spec = SeriesSpec(ramp_values((6, 5, 5)))
    path = write_enhanced(tmp_path / "gap.dcm", spec, frame_order=[0, 1, 3, 4])
    volume = read_volume(path)
    assert "1 missing slice" in volume.warnings[0]
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    with pytest.raises(InputError, match="missing slice"):
        read_volume(path, allow_gaps=False)


def test_dicom_file_without_extension_is_recognised(tmp_path):
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "IM000123")
    volume = read_volume(tmp_path / "IM000123")
    assert volume.modality == "MR"


def test_secondary_capture_without_geometry_warns():
    volume = read_volume(get_testdata_file("JPEG2000.dcm"))
    assert "no patient position" in volume.warnings[0]
    np.testing.assert_allclose(volume.spacing[:2], [2.26, 2.26])


def test_dicom_without_image_is_refused(tmp_path):
    path = dicom_text_file(tmp_path / "structures.dcm")
    with pytest.raises(InputError, match=r"holds no image .*RT Structure Set Storage"):
        read_volume(path)


def test_colour_dicom_is_refused():
    with pytest.raises(InputError, match="colour"):
        read_volume(get_testdata_file("SC_rgb_rle.dcm"))


def test_palette_colour_dicom_is_refused_not_shown_as_table_indices():
    with pytest.raises(InputError, match="PALETTE COLOR"):
        read_volume(get_testdata_file("examples_palette.dcm"))


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_a_malformed_number_of_frames_is_named_with_the_file():
    path = get_testdata_file("badVR.dcm")  # NumberOfFrames '1A'
    with pytest.raises(InputError, match="NumberOfFrames is '1A', not a whole number") as info:
        read_volume(path)
    assert info.value.path == path


def test_a_big_endian_file_without_preamble_and_marker_is_read(tmp_path):
    """A bare dataset (no preamble, no 'DICM', no file meta) in explicit VR big endian."""
    source = get_testdata_file("MR_small_bigendian.dcm")
    ds = pydicom.dcmread(source)
    ds.preamble = None
    del ds.file_meta
    ds.save_as(tmp_path / "bare.dcm", enforce_file_format=False, implicit_vr=False, little_endian=False)
    assert (tmp_path / "bare.dcm").read_bytes()[:2] == b"\x00\x08"  # group 0008, big endian
    expected, bare = read_volume(source), read_volume(tmp_path / "bare.dcm")
    np.testing.assert_array_equal(np.asarray(bare.data), np.asarray(expected.data))
    np.testing.assert_array_equal(bare.affine, expected.affine)


def test_text_file_named_dcm_is_refused(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_text("hello, I am not DICOM\n" * 20)
    with pytest.raises(InputError, match="not a DICOM file"):
        read_volume(path)
