"""The job's prepared volumes: written once, reused while the sources are unchanged, read box by box."""

import itertools
import os
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engines.errors import InputError
from engines.partition import data as data_module
from engines.partition.data import BlockFile, open_data, prepare_data, wait_for_data

AFFINE = np.diag([1.2, 0.9, 2.0, 1.0])


def _write(path, array, affine=AFFINE):
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


@pytest.fixture
def scan(tmp_path):
    """An odd-sized 19x14x9 image (int16, like CT) and 4-class labels on its grid."""
    rng = np.random.default_rng(3)
    image = rng.integers(-1000, 2000, (19, 14, 9)).astype(np.int16)
    labels = rng.integers(0, 4, image.shape).astype(np.int32)
    return _write(tmp_path / "image.nii.gz", image), _write(tmp_path / "labels.nii.gz", labels), image, labels


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_a_box_read_equals_numpy_slicing(tmp_path, dtype, order):
    volume = np.asarray(np.random.default_rng(0).normal(0, 50, (7, 11, 13)).astype(dtype), order=order)
    np.save(tmp_path / "v.npy", volume)
    file = BlockFile(tmp_path / "v.npy")
    assert file.shape == volume.shape and file.dtype == volume.dtype and file.fortran == (order == "F")
    rng = np.random.default_rng(1)
    for _ in range(20):
        box = tuple(slice(int(a), int(a + rng.integers(1, n - a + 1)))
                    for a, n in ((int(rng.integers(0, n)), n) for n in volume.shape))
        got = file.read(box)
        np.testing.assert_array_equal(got, volume[box])
        assert got.flags.c_contiguous  # what torch.from_numpy and the ranks expect
    np.testing.assert_array_equal(file.read((slice(None),) * 3), volume)


def test_a_box_read_touches_only_the_rows_of_its_planes(tmp_path, monkeypatch):
    volume = np.arange(8 * 16 * 32, dtype=np.float32).reshape(8, 16, 32)
    np.save(tmp_path / "v.npy", volume)
    file = BlockFile(tmp_path / "v.npy")
    read = []
    real_pread = os.pread
    monkeypatch.setattr(data_module.os, "pread", lambda fd, n, at: read.append(n) or real_pread(fd, n, at))
    box = (slice(2, 6), slice(8, 16), slice(0, 16))  # a block of a 2x2x2 mesh
    np.testing.assert_array_equal(file.read(box), volume[box])
    assert len(read) == 4 and sum(read) == 4 * 8 * 32 * 4  # 4 planes x 8 rows x whole W, not the file


@pytest.mark.parametrize("order, axis", [("C", "D"), ("F", "W")])
def test_a_file_that_ends_early_is_named(tmp_path, order, axis):
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.float32, order=order))
    file = BlockFile(tmp_path / "v.npy")
    with open(tmp_path / "v.npy", "r+b") as f:
        f.truncate(file.offset + 2 * 16 * 4)
    with pytest.raises(InputError, match=f"ends early \\(plane 2 of 4 along {axis}\\)") as err:
        file.read((slice(0, 4),) * 3)
    assert err.value.path == str(tmp_path / "v.npy")


def test_a_fortran_box_is_read_straight_into_place(tmp_path):
    import tracemalloc

    volume = np.asfortranarray(np.random.default_rng(2).normal(0, 1, (64, 48, 40)).astype(np.float32))
    np.save(tmp_path / "v.npy", volume)
    file = BlockFile(tmp_path / "v.npy")
    tracemalloc.start()
    got = file.read((slice(0, 64), slice(0, 48), slice(0, 40)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(got, volume)
    assert peak < 1.2 * volume.nbytes  # the box and one plane's bytes, not a second copy of the box


def test_file_order_follows_the_slowest_axis_that_has_more_than_one_voxel(tmp_path):
    from engines.io import read_volume

    assert data_module.file_order(np.zeros((3, 4, 5))) == (0, 1, 2)
    assert data_module.file_order(np.zeros((3, 4, 5), order="F")) == (2, 1, 0)
    _write(tmp_path / "slice.nii", np.zeros((30, 20), np.int16))  # read as (30, 20, 1): K has no order
    assert data_module.file_order(read_volume(str(tmp_path / "slice.nii")).data) == (2, 1, 0)
    assert data_module.file_order(type("Lazy", (), {"shape": (3, 4, 5)})()) == (0, 1, 2)  # no strides


def test_prepared_volumes_are_normalised_padded_and_compact(tmp_path, scan):
    image_path, labels_path, image, labels = scan
    data = prepare_data(image_path, labels_path, (4, 8, 2), tmp_path / "out")
    assert data.shape == (19, 14, 9) and data.image.shape == (20, 16, 10) == data.labels.shape
    assert data.classes == 4 and data.labels.dtype == np.uint8 and data.image.dtype == np.float32
    np.testing.assert_allclose(data.affine, AFFINE)
    whole = (slice(None),) * 3
    got, got_labels = data.image.read(whole), data.labels.read(whole)
    expected = (image.astype(np.float64) - image.mean()) / image.std()
    np.testing.assert_allclose(got[:19, :14, :9], expected, atol=1e-5)
    np.testing.assert_allclose(got[19:], -image.mean() / image.std(), rtol=1e-6)  # padding = raw 0
    np.testing.assert_array_equal(got_labels[:19, :14, :9], labels)
    assert not got_labels[19:].any() and not got_labels[:, 14:].any() and not got_labels[..., 9:].any()


def test_unchanged_sources_are_not_read_again(tmp_path, scan, monkeypatch):
    image_path, labels_path, _, _ = scan
    first = prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")

    def refuse(*_a, **_k):
        raise AssertionError("read the sources again")

    monkeypatch.setattr("engines.io.read_volume", refuse)
    again = prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert again.mean == first.mean and again.image.path == first.image.path


def test_a_changed_source_or_block_prepares_anew(tmp_path, scan):
    image_path, labels_path, _, labels = scan
    prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert open_data(image_path, labels_path, (2, 2, 2), tmp_path / "out") is None
    relabelled = np.where(labels == 3, 1, labels).astype(np.int32)
    time.sleep(0.01)
    _write(labels_path, relabelled)
    assert open_data(image_path, labels_path, (1, 1, 1), tmp_path / "out") is None
    data = prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert data.classes == 3
    np.testing.assert_array_equal(data.labels.read((slice(None),) * 3), relabelled)


def test_sources_are_never_modified(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    paths = [Path(image_path), Path(labels_path)]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in paths]
    prepare_data(image_path, labels_path, (2, 2, 2), tmp_path / "out")
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in paths] == before


@pytest.mark.parametrize("problem, match", [
    ("shape", "must share a grid"), ("affine", "different voxel-to-world affines"),
    ("fraction", "whole numbers"), ("negative", "0 or more"),
    ("single", "single class \\(every voxel is 0\\)"), ("only_one", "single class \\(every voxel is 1\\)")])
def test_bad_volumes_are_refused_naming_the_file_and_nothing_is_written(tmp_path, scan, problem, match):
    image_path, _, _, labels = scan
    bad = {"shape": labels[:-1], "affine": labels, "fraction": labels + np.float32(0.5),
           "negative": labels.astype(np.int16) - 1, "single": np.zeros_like(labels),
           "only_one": np.ones_like(labels)}[problem]  # no background: one class all the same
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if problem == "affine" else AFFINE
    bad_path = _write(tmp_path / "bad.nii.gz", bad, affine)
    with pytest.raises(InputError, match=match) as err:
        prepare_data(image_path, bad_path, (1, 1, 1), tmp_path / "out")
    assert err.value.path == bad_path
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_intensities_are_refused_before_anything_is_written(tmp_path, scan, value):
    _, labels_path, image, _ = scan
    bad = image.astype(np.float32)
    bad[15, 3, 4] = value
    bad_path = _write(tmp_path / "nan.nii.gz", bad)
    with pytest.raises(InputError, match="NaN or infinite") as err:
        prepare_data(bad_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert err.value.path == bad_path
    assert not (tmp_path / "out").exists()


def test_too_little_disk_is_refused_before_writing(tmp_path, scan, monkeypatch):
    image_path, labels_path, _, _ = scan
    monkeypatch.setattr(data_module.shutil, "disk_usage", lambda _p: type("U", (), {"free": 1000})())
    with pytest.raises(InputError, match=r"need .* GiB here"):
        prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_other_ranks_wait_for_rank_0(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    found = []
    waiter = threading.Thread(target=lambda: found.append(
        wait_for_data(image_path, labels_path, (1, 1, 1), tmp_path / "out", timeout_s=60)))
    waiter.start()
    time.sleep(0.5)
    assert not found
    prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    waiter.join(timeout=10)
    assert found and found[0].classes == 4


def test_waiting_gives_up_with_a_message_about_shared_folders(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    with pytest.raises(InputError, match="every machine sees"):
        wait_for_data(image_path, labels_path, (1, 1, 1), tmp_path / "out", timeout_s=0.3)


def test_a_dicom_folder_changes_identity_when_a_file_is_added_or_rewritten(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"1")
    first = data_module.source_identity(folder)
    (folder / "b.dcm").write_bytes(b"2")
    second = data_module.source_identity(folder)
    (folder / "a.dcm").write_bytes(b"3")  # same size, and maybe the same mtime on a coarse file system
    assert len({str(first), str(second), str(data_module.source_identity(folder))}) == 3


@pytest.mark.parametrize("header, line", [("scan.mhd", "ElementDataFile = scan.raw"),
                                          ("scan.nhdr", "data file: scan.raw")])
def test_a_detached_header_changes_identity_when_its_voxel_file_changes(tmp_path, header, line):
    (tmp_path / header).write_text(f"NDims = 3\n{line}\n")
    (tmp_path / "scan.raw").write_bytes(b"\0" * 64)
    first = data_module.source_identity(tmp_path / header)
    (tmp_path / "scan.raw").write_bytes(b"\1" * 64)
    assert data_module.source_identity(tmp_path / header) != first


def test_a_source_rewritten_while_being_prepared_is_prepared_again(tmp_path, scan, monkeypatch):
    image_path, labels_path, _, labels = scan
    real = data_module._mean_std

    def rewrite_during(pixels, path):
        _write(labels_path, np.where(labels == 3, 0, labels).astype(np.int32))
        return real(pixels, path)

    monkeypatch.setattr(data_module, "_mean_std", rewrite_during)
    prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    assert open_data(image_path, labels_path, (1, 1, 1), tmp_path / "out") is None  # recorded as it was


def test_the_callers_check_refuses_before_anything_is_written(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    seen = []

    def check(shape, values):
        seen.append((shape, values))
        raise InputError("crop too large")

    with pytest.raises(InputError, match="crop too large"):
        prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out", check)
    assert seen == [((19, 14, 9), (0, 1, 2, 3))] and not (tmp_path / "out").exists()


def test_a_deleted_volume_is_prepared_again(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out")
    (tmp_path / "out" / "data" / "image.npy").unlink()
    assert open_data(image_path, labels_path, (1, 1, 1), tmp_path / "out") is None
    assert prepare_data(image_path, labels_path, (1, 1, 1), tmp_path / "out").image.path.exists()


def test_short_reads_are_continued(tmp_path, monkeypatch):
    volume = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    np.save(tmp_path / "v.npy", volume)
    real_pread = os.pread
    monkeypatch.setattr(data_module.os, "pread", lambda fd, n, at: real_pread(fd, max(1, n // 3), at))
    np.testing.assert_array_equal(BlockFile(tmp_path / "v.npy").read((slice(1, 3), slice(2, 6), slice(0, 8))),
                                  volume[1:3, 2:6])


def test_waiting_ends_as_soon_as_there_is_a_reason_to_give_up(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    started = time.monotonic()
    with pytest.raises(InputError, match="stopped while waiting"):
        wait_for_data(image_path, labels_path, (1, 1, 1), tmp_path / "out", timeout_s=60,
                      give_up=lambda: "stopped while waiting")
    assert time.monotonic() - started < 5


def test_infinite_label_values_are_refused_by_name(tmp_path):
    labels = np.zeros((4, 4, 4), np.float32)
    labels[1, 2, 3] = np.inf
    with pytest.raises(InputError, match=r"whole numbers .* such as inf"):
        data_module.label_values(labels, "labels.nii")


class _Recorded:
    """An array-like volume (with the strides of the array it wraps) that records the box each read takes
    and refuses a whole read."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.strides, self.reads = (array, array.shape, array.dtype,
                                                                         array.strides, [])

    def __getitem__(self, key):
        part = self.array[key]
        self.reads.append(key)
        return part

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole volume was read at once")


def test_preparing_reads_uncompressed_volumes_a_slab_at_a_time(tmp_path, monkeypatch):
    import engines.io

    rng = np.random.default_rng(5)
    image = (rng.normal(0, 30, (23, 12, 10)) + 1e6).astype(np.float64)  # a large offset: no cancellation
    labels = rng.integers(0, 3, image.shape).astype(np.float32)  # labels saved as floats by some tools
    recorded = {}
    real_read = engines.io.read_volume

    def read_lazily(path, **options):
        volume = real_read(path, **options)
        volume.data = recorded[Path(path).name] = _Recorded(np.asarray(volume.data))
        return volume

    monkeypatch.setattr(engines.io, "read_volume", read_lazily)
    monkeypatch.setattr(data_module, "SLAB_VOXELS", 23 * 12 * 4)  # 4 planes a slab: 3 uneven slabs
    data = prepare_data(_write(tmp_path / "image.nii", image), _write(tmp_path / "labels.nii", labels),
                        (2, 2, 2), tmp_path / "out")
    for volume in recorded.values():  # NIfTI's first axis is fastest in the file: slabs across the last
        assert all(key[:2] == (slice(None), slice(None)) and key[2].stop - key[2].start <= 4
                   for key in volume.reads)
        assert len(volume.reads) >= 3  # ceil(10 / 4) slabs a pass
    assert data.image.fortran and data.labels.fortran  # written in that order too
    assert data.classes == 3 and data.labels.dtype == np.uint8
    assert data.mean == pytest.approx(image.mean(), rel=1e-12)
    assert data.std == pytest.approx(image.std(), rel=1e-9)
    got = data.image.read((slice(0, 23), slice(0, 12), slice(0, 10)))
    np.testing.assert_allclose(got, (image - image.mean()) / image.std(), atol=1e-6)
    np.testing.assert_array_equal(data.labels.read((slice(0, 23), slice(0, 12), slice(0, 10))), labels)


def _save(array: np.ndarray, path: Path) -> None:
    """`array` (x, y, z) as a compressed file of the format `path`'s suffix names, 1.2 x 0.9 x 2 mm."""
    if path.suffix in (".nrrd", ".mha"):
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(array.transpose())  # (z, y, x): ITK's x is the array's first axis
        image.SetSpacing((1.2, 0.9, 2.0))
        sitk.WriteImage(image, str(path), useCompression=True)
    else:
        (nib.MGHImage if path.suffix == ".mgz" else nib.Nifti1Image)(array, AFFINE).to_filename(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mgz", ".nrrd", ".mha"])
def test_preparing_streams_compressed_volumes_a_slab_at_a_time(tmp_path, monkeypatch, suffix):
    from engines.io import itk_formats, nifti
    from engines.io.lazy_arrays import StreamedVoxels

    rng = np.random.default_rng(8)
    image = rng.integers(-1000, 2000, (21, 13, 11)).astype(np.int16)
    labels = np.where(rng.random(image.shape) < 0.5, 0, 42).astype(np.int32)
    paths = []
    for name, array in (("image", image), ("labels", labels)):
        _save(array, tmp_path / (name + suffix))
        paths.append(str(tmp_path / (name + suffix)))
    reads, opened = [], []
    real_planes, real_nifti_opener = StreamedVoxels._planes, nifti.ImageOpener
    real_itk_opener = itk_formats.RawLayout.open_compressed

    def planes(self, low, high):
        reads.append((Path(self.path).name, low, high))
        return real_planes(self, low, high)

    def nifti_opener(*args, **kwargs):
        opened.append(args[0])
        return real_nifti_opener(*args, **kwargs)

    def itk_opener(layout):
        opened.append(layout.data_file)
        return real_itk_opener(layout)

    monkeypatch.setattr(StreamedVoxels, "_planes", planes)
    monkeypatch.setattr(nifti, "ImageOpener", nifti_opener)
    monkeypatch.setattr(itk_formats.RawLayout, "open_compressed", itk_opener)
    monkeypatch.setattr(data_module, "SLAB_VOXELS", 21 * 13 * 4)  # 4 planes a slab
    data = prepare_data(*paths, (2, 2, 2), tmp_path / "out")
    assert reads and all(high - low <= 4 for _, low, high in reads)  # never the whole volume at once
    for path in paths:  # two passes each (values or moments, then writing), each in file order
        name = Path(path).name
        ranges = [(low, high) for file, low, high in reads if file == name]
        starts = [i for i, (low, _) in enumerate(ranges) if low == 0]
        assert len(starts) == 2
        for first, end in zip(starts, [*starts[1:], len(ranges)], strict=True):
            one_pass = ranges[first:end]  # each slab where the last one ended, the last at the far end
            assert all(a[1] == b[0] for a, b in itertools.pairwise(one_pass)) and one_pass[-1][1] == 11
        assert opened.count(path) <= 3  # its header checked (NIfTI), then once a pass
    assert data.values == (0, 42) and data.mean == pytest.approx(image.mean())
    got = data.image.read((slice(0, 21), slice(0, 13), slice(0, 11)))
    np.testing.assert_allclose(got, (image - image.mean()) / image.std(), atol=1e-5)
    np.testing.assert_array_equal(data.labels.read((slice(0, 21), slice(0, 13), slice(0, 11))), labels // 42)


def test_a_truncated_compressed_volume_is_named_and_nothing_is_kept(tmp_path, scan):
    image_path, labels_path, _, _ = scan
    whole = Path(labels_path).read_bytes()
    Path(labels_path).write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(InputError, match="truncated") as info:
        prepare_data(image_path, labels_path, (2, 2, 2), tmp_path / "out")
    assert info.value.path == labels_path
    assert open_data(image_path, labels_path, (2, 2, 2), tmp_path / "out") is None


def test_a_fraction_in_a_later_slab_is_found_and_named(monkeypatch):
    labels = np.zeros((8, 4, 4), np.float32)
    labels[:4] = 1
    labels[6, 1, 2] = 2.5
    monkeypatch.setattr(data_module, "SLAB_VOXELS", 16)  # one plane a slab
    with pytest.raises(InputError, match=r"whole numbers .* such as 2.5"):
        data_module.label_values(labels, "labels.nii")


@pytest.mark.parametrize("dtype", [np.int16, np.uint64, np.float32])
def test_the_classes_are_the_values_present_in_any_slab(monkeypatch, dtype):
    """BraTS-like values 0, 1, 2, 4 are four classes, not five; each slab adds what it holds."""
    labels = np.zeros((6, 3, 3), dtype)
    labels[1, 0, 0], labels[3, 1, 1], labels[5, 2, 2] = 2, 1, 4  # only the last slab holds 4
    monkeypatch.setattr(data_module, "SLAB_VOXELS", 9)  # one plane a slab
    assert data_module.label_values(labels, "labels.nii") == (0, 1, 2, 4)
    labels[labels == 0] = 3000  # no background, and a value past the small-integer count
    assert data_module.label_values(labels, "labels.nii") == (1, 2, 4, 3000)
    assert data_module.label_values(labels > 3, "mask.nii") == (0, 1)


def test_negative_labels_are_refused_wherever_they_are(monkeypatch):
    labels = np.ones((6, 3, 3), np.int16)
    labels[:3] = 0
    labels[5, 2, 2] = -1  # only the last slab holds the negative one
    monkeypatch.setattr(data_module, "SLAB_VOXELS", 9)
    with pytest.raises(InputError, match="0 or more; found -1"):
        data_module.label_values(labels, "labels.nii")


def test_an_intensity_image_given_as_labels_is_refused():
    """Thousands of different whole numbers are an image's intensities, not a label map's classes."""
    image = np.arange(2000, dtype=np.uint16).reshape(20, 10, 10)
    with pytest.raises(InputError, match=r"more than 1024 different values: .* intensity image"):
        data_module.label_values(image, "t1.nii")
    huge = np.zeros((2, 2, 2), np.float64)
    huge[0, 0, 0] = 1e12
    with pytest.raises(InputError, match="at most 2147483647; found 1000000000000"):
        data_module.label_values(huge, "labels.nii")


def test_label_values_are_prepared_as_class_indices(tmp_path):
    """Sparse values (FreeSurfer-like ids) become indices 0..C-1 on disk; the job keeps each one's value."""
    rng = np.random.default_rng(3)
    values = np.array([0, 2, 41, 1000])
    labels = values[rng.integers(0, 4, (9, 8, 8))].astype(np.int32)
    image = rng.normal(0, 1, labels.shape).astype(np.float32)
    data = prepare_data(_write(tmp_path / "image.nii", image), _write(tmp_path / "labels.nii", labels),
                        (4, 4, 4), tmp_path / "out")
    assert data.values == (0, 2, 41, 1000) and data.classes == 4 and data.labels.dtype == np.uint8
    stored = data.labels.read((slice(0, 12), slice(0, 8), slice(0, 8)))
    np.testing.assert_array_equal(stored[:9], np.searchsorted(values, labels))
    assert not stored[9:].any()  # padding
    again = open_data(str(tmp_path / "image.nii"), str(tmp_path / "labels.nii"), (4, 4, 4), tmp_path / "out")
    assert again is not None and again.values == data.values


def test_what_reading_found_is_kept_with_the_prepared_volumes(tmp_path, scan):
    """A 4D image trains on its first volume: the job says so, also when it reuses the prepared volumes."""
    _, labels_path, image, _ = scan
    four_d = _write(tmp_path / "four_d.nii", np.stack([image, image // 2], axis=-1))
    data = prepare_data(four_d, labels_path, (1, 1, 1), tmp_path / "out")
    assert data.warnings == ("four_d.nii: 4D image with 2 volumes: only the first is used",)
    np.testing.assert_allclose(data.mean, image.mean())  # the first volume's
    assert open_data(four_d, labels_path, (1, 1, 1), tmp_path / "out").warnings == data.warnings
    assert prepare_data(*scan[:2], (1, 1, 1), tmp_path / "clean").warnings == ()


def test_a_resume_reuses_the_prepared_volumes_when_its_classes_are_the_labels_values(tmp_path, monkeypatch):
    """Prepared for a fresh run (the values held) or for a checkpoint's classes: reused when the class
    table is the same, prepared again when it is not."""
    rng = np.random.default_rng(6)
    labels = np.array([0, 1, 4], np.uint8)[rng.integers(0, 3, (8, 8, 8))]
    paths = (_write(tmp_path / "image.nii", rng.normal(0, 1, labels.shape).astype(np.float32)),
             _write(tmp_path / "labels.nii", labels))
    writes = []
    real_write = data_module._write
    monkeypatch.setattr(data_module, "_write", lambda path, *a, **k: writes.append(path.name) or
                        real_write(path, *a, **k))

    def prepared(classes):
        writes.clear()
        data = prepare_data(*paths, (4, 4, 4), tmp_path / "out", classes=classes)
        return data.values, bool(writes)

    assert prepared(None) == ((0, 1, 4), True)
    assert prepared((0, 1, 4)) == ((0, 1, 4), False)  # a checkpoint of that fresh run resumes on them
    assert prepared((0, 1, 2, 3, 4)) == ((0, 1, 2, 3, 4), True)  # an older checkpoint's 0..C-1
    assert prepared((0, 1, 2, 3, 4)) == ((0, 1, 2, 3, 4), False)
    assert prepared(None) == ((0, 1, 4), True)  # a fresh run does not take another table's classes
