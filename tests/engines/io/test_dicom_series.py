"""DICOM folders written by the tests (known truth), checked against the truth and against SimpleITK/GDCM."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from engines.errors import InputError
from engines.io import list_dicom_series, read_volume, write_volume
from tests.engines.io.conftest import itk_array, itk_ras_affine, itk_read_series
from tests.engines.io.dicom_factory import OBLIQUE_IOP, SeriesSpec, dicom_text_file, ramp_values, write_series

SHAPE = (6, 5, 7)  # columns, rows, slices: all different, so a swapped axis shows


def _assert_matches_truth_and_itk(volume, spec, folder):
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    itk = itk_read_series(folder)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(itk))


@pytest.mark.parametrize(
    "spec",
    [
        SeriesSpec(ramp_values(SHAPE)),
        SeriesSpec(ramp_values(SHAPE), iop=OBLIQUE_IOP, slope=2.0, intercept=-1000.0),
        SeriesSpec(ramp_values(SHAPE), iop=(0, 1, 0, 0, 0, -1), origin_lps=(12.0, -80.0, 95.0)),  # sagittal
        SeriesSpec(ramp_values(SHAPE), iop=(1, 0, 0, 0, 0, -1), slice_spacing=1.25),  # coronal
        SeriesSpec(ramp_values(SHAPE, low=0, high=900), modality="MR", slope=2.5, intercept=-10.0,
                   window=None),
    ],
    ids=["axial-ct", "oblique-slope2", "sagittal", "coronal", "mr-slope"],
)
def test_series_matches_truth_and_simpleitk(tmp_path, spec):
    write_series(tmp_path, spec)  # file names shuffled against slice order
    volume = read_volume(tmp_path)
    _assert_matches_truth_and_itk(volume, spec, tmp_path)
    assert volume.shape == SHAPE
    assert volume.modality == spec.modality
    assert volume.window == spec.window
    assert volume.warnings == []
    assert volume.meta["series_uid"] == spec.series_uid
    assert volume.meta["format"] == "DICOM series"


def test_ct_intercept_gives_hounsfield_units(tmp_path):
    values = np.full(SHAPE, -1000.0)  # air
    values[2:4, 2:4, 3] = 40.0  # a little soft tissue
    spec = SeriesSpec(values, intercept=-1024.0)
    write_series(tmp_path, spec)
    volume = read_volume(tmp_path)
    assert np.asarray(volume.data).min() == -1000
    assert np.asarray(volume.data)[2, 2, 3] == 40
    assert np.issubdtype(volume.data.dtype, np.signedinteger)  # stored uint16 + intercept -> signed


def test_fractional_slope_gives_float_values(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE, low=0, high=100), slope=0.25, intercept=0.0, modality="PT")
    write_series(tmp_path, spec)
    volume = read_volume(tmp_path)
    assert volume.data.dtype == np.float32
    np.testing.assert_allclose(np.asarray(volume.data), spec.expected())


def test_shuffled_file_order_does_not_matter(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE), iop=OBLIQUE_IOP)
    write_series(tmp_path / "a", spec, shuffle_seed=1)
    write_series(tmp_path / "b", spec, shuffle_seed=None)
    a, b = read_volume(tmp_path / "a"), read_volume(tmp_path / "b")
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    np.testing.assert_allclose(a.affine, b.affine)


def test_two_series_in_one_folder_largest_by_default_and_by_uid(tmp_path):
    big = SeriesSpec(ramp_values(SHAPE), description="")
    small = SeriesSpec(ramp_values((6, 5, 3), low=0, high=50), description="small", modality="MR")
    write_series(tmp_path, big, prefix="B")
    write_series(tmp_path, small, prefix="S")
    series = list_dicom_series(tmp_path)
    assert [(s.uid, s.description, s.modality, s.slices) for s in series] == [
        (big.series_uid, "", "CT", 7),
        (small.series_uid, "small", "MR", 3),
    ]
    assert len(series[1].files) == 3

    volume = read_volume(tmp_path)
    assert volume.meta["series_uid"] == big.series_uid
    assert "2 series" in volume.warnings[0] and big.series_uid in volume.warnings[0]
    assert "the largest, no description (CT, 7 images" in volume.warnings[0]
    assert "Open DICOM folder" in volume.warnings[0]  # the app's way to choose, beside the CLI's

    chosen = read_volume(tmp_path, series_uid=small.series_uid)
    np.testing.assert_array_equal(np.asarray(chosen.data), small.expected())
    np.testing.assert_allclose(chosen.affine, small.affine_ras(), atol=1e-4)
    assert chosen.warnings == []

    with pytest.raises(InputError, match=small.series_uid):  # the message lists the series there are
        read_volume(tmp_path, series_uid="1.2.3.4")


def test_a_larger_colour_series_is_passed_over_for_the_scan(tmp_path):
    scan = SeriesSpec(ramp_values(SHAPE), description="scan")
    write_series(tmp_path, scan, prefix="CT")
    screens = SeriesSpec(ramp_values((6, 5, 9)), description="screens")
    for path in write_series(tmp_path, screens, prefix="SC"):
        ds = pydicom.dcmread(path)  # made a colour screenshot: 3 samples per pixel
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = bytes(ds.Rows * ds.Columns * 3)
        ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path)
    assert volume.meta["series_uid"] == scan.series_uid
    np.testing.assert_array_equal(np.asarray(volume.data), scan.expected())
    assert "showing the largest greyscale, 'scan'" in volume.warnings[0]


def test_orientations_jittering_within_tolerance_stay_one_stack(tmp_path):
    """Values either side of a rounding boundary (0.00049 and 0.00051) are one orientation, not two."""
    spec = SeriesSpec(ramp_values((6, 5, 8)))
    for k, path in enumerate(sorted(write_series(tmp_path, spec, shuffle_seed=None))):
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0.00049 if k % 2 else 0.00051]
        ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path)
    assert volume.shape == (6, 5, 8) and volume.warnings == []
    np.testing.assert_allclose(volume.spacing[2], 2.5, atol=1e-3)


def test_slices_of_one_series_stored_signed_and_unsigned_are_not_wrapped(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE, low=-1000, high=500), intercept=-1024.0, unsigned=False)
    paths = sorted(write_series(tmp_path, spec, shuffle_seed=None))
    ds = pydicom.dcmread(paths[4])
    ds.PixelRepresentation = 0  # this scanner wrote one slice unsigned, with values past int16's range
    ds.PixelData = np.full((ds.Rows, ds.Columns), 40000, "<u2").tobytes()
    ds.save_as(paths[4], enforce_file_format=True)
    data = np.asarray(read_volume(tmp_path).data)
    assert np.all(data[:, :, 4] == 40000 - 1024)
    expected = spec.expected()
    np.testing.assert_array_equal(np.delete(data, 4, axis=2), np.delete(expected, 4, axis=2))


def test_series_without_preamble_and_marker_is_read(tmp_path):
    """Some PACS exports and anonymisers write the bare dataset: no 128-byte preamble, no 'DICM'."""
    spec = SeriesSpec(ramp_values(SHAPE), iop=OBLIQUE_IOP)
    paths = write_series(tmp_path, spec)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.preamble = None
        del ds.file_meta
        ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert not any(path.read_bytes()[128:132] == b"DICM" for path in paths)
    volume = read_volume(tmp_path)
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    single = read_volume(paths[0])  # one such file on its own, named .dcm or not
    renamed = paths[0].rename(tmp_path / "IMAGE1")
    assert read_volume(renamed).shape == single.shape == (6, 5, 1)


@pytest.mark.parametrize("spacing", [0.625, 1 / 3])
def test_positions_written_to_two_decimals_are_even(tmp_path, spacing):
    """0.625 mm slices at positions written as "1.88", "2.50": steps of 0.62 and 0.63 are not gaps."""
    spec = SeriesSpec(ramp_values((6, 5, 20)), slice_spacing=spacing, origin_lps=(-40.0, -30.0, 12.0))
    for path in write_series(tmp_path, spec):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [f"{float(v):.2f}" for v in ds.ImagePositionPatient]
        ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path, allow_gaps=False)
    assert volume.warnings == [] and volume.shape == (6, 5, 20)
    np.testing.assert_allclose(volume.spacing[2], spacing, atol=0.001)


def test_missing_slice_is_filled_and_warned(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE), iop=OBLIQUE_IOP)
    write_series(tmp_path, spec, skip=(3,))
    volume = read_volume(tmp_path)
    # every real slice at its true place: the affine is the complete series' affine
    np.testing.assert_allclose(volume.affine, spec.affine_ras(), atol=1e-4)
    real = [0, 1, 2, 4, 5, 6]
    np.testing.assert_array_equal(np.asarray(volume.data)[:, :, real], spec.expected()[:, :, real])
    assert np.all(np.asarray(volume.data)[:, :, 3] == spec.expected()[:, :, real].min())
    assert volume.meta["inserted_slices"] == [3]
    (message,) = volume.warnings
    assert "1 missing slice" in message and "gap of 5.00 mm" in message and "usual spacing 2.50 mm" in message
    # the gap is named by position along the normal (origin . normal + k * spacing)
    start = float(np.dot(spec.origin_lps, spec.normal))
    assert f"{start + 2 * 2.5:.2f} and {start + 4 * 2.5:.2f} mm" in message


def test_missing_slice_refused_when_asked(tmp_path):
    write_series(tmp_path, SeriesSpec(ramp_values(SHAPE)), skip=(2, 3))
    with pytest.raises(InputError, match="2 missing slices") as info:
        read_volume(tmp_path, allow_gaps=False)
    assert info.value.path == str(tmp_path)
    assert "inserted" not in str(info.value)  # it says what is wrong, not what reading would have done


def test_uneven_spacing_warns_with_the_position_error(tmp_path):
    positions = [0.0, 2.5, 5.0, 7.5, 11.0, 13.5, 16.0]  # one step of 3.5 mm
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path, spec, positions_mm=positions)
    volume = read_volume(tmp_path)
    (message,) = volume.warnings
    assert "uneven slice spacing: 3.50 mm" in message
    np.testing.assert_allclose(volume.spacing[2], 16.0 / 6)  # the mean spacing, first and last exact
    first_to_last = volume.affine @ [0, 0, 6, 1] - volume.affine @ [0, 0, 0, 1]
    np.testing.assert_allclose(np.linalg.norm(first_to_last[:3]), 16.0, atol=1e-4)
    with pytest.raises(InputError, match="uneven") as info:
        read_volume(tmp_path, allow_gaps=False)
    assert "shown with" not in str(info.value)


def test_gantry_tilt_gives_a_sheared_affine_with_every_slice_in_place(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    paths = write_series(tmp_path, spec, tilt_degrees=12.0)
    volume = read_volume(tmp_path)
    assert "gantry tilt of about 12.0°" in volume.warnings[0]
    step = spec.slice_spacing / np.cos(np.radians(12.0))  # origins step along the table, planes stay apart
    assert f"planes are {spec.slice_spacing:.2f} mm apart along their normal" in volume.warnings[0]
    assert f"origin {step:.2f} mm from the last" in volume.warnings[0]
    np.testing.assert_allclose(volume.spacing[2], step, atol=1e-4)
    for path in paths:  # the first voxel of every file's slice lands on its ImagePositionPatient
        lps = np.array([float(v) for v in pydicom.dcmread(path).ImagePositionPatient])
        k = round(float(np.dot(lps - spec.origin_lps, spec.normal)) / spec.slice_spacing)
        np.testing.assert_allclose((volume.affine @ [0, 0, k, 1])[:3], lps * [-1, -1, 1], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())


def test_localizer_with_the_same_uid_is_left_out(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path, spec)
    localizer = SeriesSpec(ramp_values((6, 5, 1)), iop=(1, 0, 0, 0, 0, -1), series_uid=spec.series_uid)
    write_series(tmp_path, localizer, prefix="LOC")
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    assert any("another orientation" in w for w in volume.warnings)


def test_two_images_at_one_position_are_refused(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path / "x", spec)
    write_series(tmp_path / "x", spec, prefix="DUP")  # the same positions again (e.g. a second phase)
    with pytest.raises(InputError, match="share a slice position"):
        read_volume(tmp_path / "x")


@pytest.mark.parametrize(("keyword", "values"),
                         [("EchoNumbers", (2, 1)), ("TemporalPositionIdentifier", (3, 1)),
                          ("TriggerTime", (412.5, 35.0))])
def test_a_series_of_several_volumes_gives_the_first_with_a_warning(tmp_path, keyword, values):
    """Echoes, phases or trigger times of one series at the same positions: the lowest one, as 4D NIfTI."""
    first = SeriesSpec(ramp_values(SHAPE))
    second = SeriesSpec(ramp_values(SHAPE, low=0, high=300), series_uid=first.series_uid)
    for spec, value, prefix in ((first, values[1], "A"), (second, values[0], "B")):
        for path in write_series(tmp_path, spec, prefix=prefix):
            ds = pydicom.dcmread(path)
            setattr(ds, keyword, value)
            ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), first.expected())
    np.testing.assert_allclose(volume.affine, first.affine_ras(), atol=1e-4)
    (warning,) = volume.warnings
    assert f"2 volumes at the same slice positions ({keyword} {min(values):g}, {max(values):g})" in warning


@pytest.mark.parametrize("case", ["stopped early", "2 nm apart across a rounding boundary"])
def test_a_repeat_stopped_early_or_a_hair_apart_still_gives_the_first_volume(tmp_path, case):
    first = SeriesSpec(ramp_values(SHAPE))
    second = SeriesSpec(ramp_values(SHAPE, low=0, high=300), series_uid=first.series_uid)
    write_series(tmp_path, first, prefix="A")
    for k, path in enumerate(write_series(tmp_path, second, prefix="B", shuffle_seed=None)):
        ds = pydicom.dcmread(path)
        if case == "stopped early" and k >= 4:
            path.unlink()
            continue
        if case != "stopped early":  # z written 12.004999 here, 12.005001 in the first: one slice
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + 0.004999]
        ds.TemporalPositionIdentifier = 2
        ds.save_as(path, enforce_file_format=True)
    for path in tmp_path.glob("A*"):
        ds = pydicom.dcmread(path)
        if case != "stopped early":
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + 0.005001]
        ds.TemporalPositionIdentifier = 1
        ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), first.expected())
    assert "2 volumes at the same slice positions (TemporalPositionIdentifier 1, 2)" in volume.warnings[0]
    np.testing.assert_allclose(volume.affine[2, 3], 12.0 + (0.005001 if "apart" in case else 0), atol=1e-5)


def test_a_slice_sent_twice_is_not_taken_for_a_second_volume(tmp_path):
    """An AcquisitionNumber per slice (axial CT) splits the images into one-image groups: not volumes."""
    spec = SeriesSpec(ramp_values(SHAPE))
    paths = write_series(tmp_path, spec)
    for number, path in enumerate(paths, start=1):
        ds = pydicom.dcmread(path)
        ds.AcquisitionNumber = number
        ds.save_as(path, enforce_file_format=True)
    ds = pydicom.dcmread(paths[3])
    ds.AcquisitionNumber, ds.SOPInstanceUID = len(paths) + 1, pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "again.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=r"share a slice position .*a slice sent twice"):
        read_volume(tmp_path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
@pytest.mark.filterwarnings("ignore:A value of '0' for")
def test_an_unreadable_frame_count_in_another_series_leaves_the_folder_readable(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path, spec)
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.NumberOfFrames, ds.SeriesInstanceUID = 0, pydicom.uid.generate_uid()  # read as 1, as pydicom does
    ds.save_as(tmp_path / "zero.dcm", enforce_file_format=True)
    shutil.copy(get_testdata_file("badVR.dcm"), tmp_path / "bad.dcm")  # NumberOfFrames '1A'
    assert sorted(s.slices for s in list_dicom_series(tmp_path)) == [1, 1, 7]
    np.testing.assert_array_equal(np.asarray(read_volume(tmp_path).data), spec.expected())
    assert read_volume(tmp_path / "zero.dcm").shape == (64, 64, 1)
    with pytest.raises(InputError, match="NumberOfFrames is '1A'"):
        read_volume(tmp_path / "bad.dcm")


def test_truncated_pixel_data_is_refused_naming_the_file(tmp_path):
    paths = write_series(tmp_path, SeriesSpec(ramp_values(SHAPE)))
    ds = pydicom.dcmread(paths[2])
    ds.PixelData = ds.PixelData[:20]  # of 60 bytes: a copy cut short (GDCM would make up the rest)
    ds.save_as(paths[2], enforce_file_format=True)
    with pytest.raises(InputError, match=r"pixel data is truncated: 20 bytes.*need 60") as info:
        read_volume(tmp_path)
    assert info.value.path == str(paths[2])


@pytest.mark.parametrize("cut", [250, 600], ids=["in its file meta", "before its image attributes"])
@pytest.mark.parametrize("which", [0, 2, -1], ids=["first", "middle", "last"])
def test_a_file_cut_short_in_its_header_is_named_not_passed_over(tmp_path, cut, which):
    """pydicom reads such a file as far as it goes, without a word: the series would lose a slice (at an
    end, silently) and the file be taken for no image. Other files that are no images stay unnamed."""
    paths = sorted(write_series(tmp_path, SeriesSpec(ramp_values(SHAPE)), shuffle_seed=None))
    paths[which].write_bytes(paths[which].read_bytes()[:cut])
    (tmp_path / "notes.txt").write_text("not DICOM")
    dicom_text_file(tmp_path / "rtstruct.dcm")  # DICOM, but no image
    volume = read_volume(tmp_path)
    assert volume.shape[2] == SHAPE[2] - (which != 2)  # a middle slice's place is kept (a gap, filled)
    (note,) = [w for w in volume.warnings if "damaged" in w]
    assert f"1 DICOM file of this folder cannot be read (damaged) and is left out: {paths[which].name};" \
        in note
    assert "rtstruct" not in note and "notes" not in note


def test_an_image_without_a_series_uid_is_named_as_such_not_as_damaged(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path, spec)
    odd = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del odd.SeriesInstanceUID
    odd.save_as(tmp_path / "scout.dcm", enforce_file_format=True)
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())
    assert volume.warnings == ["1 DICOM file of this folder carries no SeriesInstanceUID and is left out: "
                               "scout.dcm; a series may lack the slice it holds"]


def test_a_folder_of_damaged_files_names_them_when_it_has_no_images(tmp_path):
    paths = write_series(tmp_path, SeriesSpec(ramp_values(SHAPE)))
    for path in paths:
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=f"no DICOM images in this folder .*{len(paths)} DICOM files of this "
                                         "folder cannot be read"):
        read_volume(tmp_path)


def test_nested_folders_are_searched(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE))
    write_series(tmp_path / "patient" / "study" / "series1", spec)
    (tmp_path / "patient" / "README.txt").write_text("not DICOM")
    volume = read_volume(tmp_path)
    np.testing.assert_array_equal(np.asarray(volume.data), spec.expected())


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    dicom_text_file(tmp_path / "rtstruct.dcm")  # DICOM, but no image
    with pytest.raises(InputError, match=r"no DICOM images in this folder \(2 files looked at\)") as info:
        read_volume(tmp_path)
    assert info.value.path == str(tmp_path)
    assert list_dicom_series(tmp_path) == []


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no DICOM images"):
        read_volume(tmp_path)


def test_series_of_bundled_ct_slice_copies(tmp_path):
    """pydicom's real CT slice (intercept -1024), copied to 4 positions 5 mm apart."""
    source = pydicom.data.get_testdata_file("CT_small.dcm")
    for k in range(4):
        ds = pydicom.dcmread(source)
        ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 5.0 * k
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(tmp_path / f"ct{3 - k}.dcm")
    volume = read_volume(tmp_path)
    itk = itk_read_series(tmp_path)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(itk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(itk))
    assert np.asarray(volume.data).min() < -800  # HU: air around the phantom, not raw stored values
    assert volume.orientation == "LPS"


def test_oblique_series_written_as_nifti_keeps_its_geometry(tmp_path):
    spec = SeriesSpec(ramp_values(SHAPE), iop=OBLIQUE_IOP, slope=2.0, intercept=-1000.0)
    write_series(tmp_path / "dicom", spec)
    volume = read_volume(tmp_path / "dicom")
    write_volume(volume, tmp_path / "oblique.nii.gz")
    back = read_volume(tmp_path / "oblique.nii.gz")
    np.testing.assert_allclose(back.affine, spec.affine_ras(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(back.data), spec.expected())
    # SimpleITK agrees that the NIfTI and the DICOM series occupy the same place
    itk_nifti = sitk.ReadImage(str(tmp_path / "oblique.nii.gz"))
    np.testing.assert_allclose(itk_ras_affine(itk_nifti), itk_ras_affine(itk_read_series(tmp_path / "dicom")),
                               atol=1e-4)


def test_reading_never_writes_the_folder(tmp_path):
    write_series(tmp_path / "s", SeriesSpec(ramp_values(SHAPE)), skip=(3,))
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "s").iterdir()}
    read_volume(tmp_path / "s")
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "s").iterdir()}
    assert before == after
    shutil.rmtree(tmp_path / "s")


def test_slices_a_hair_apart_never_make_a_grid_of_mostly_blank_slices(tmp_path):
    """Two interleaved stacks 2 um apart: the 'usual' step is 0.002 mm, and filling the 2.5 mm gaps
    with blank slices would make 7,500 of them; shown as uneven spacing, one slice per image, instead."""
    first = SeriesSpec(ramp_values(SHAPE))
    second = SeriesSpec(ramp_values(SHAPE, low=0, high=300), series_uid=first.series_uid)
    write_series(tmp_path, first, prefix="A")
    for path in write_series(tmp_path, second, prefix="B"):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 0.002]
        ds.save_as(path, enforce_file_format=True)
    volume = read_volume(tmp_path)
    assert volume.shape == (SHAPE[0], SHAPE[1], 2 * SHAPE[2])
    assert "uneven slice spacing" in volume.warnings[0]
