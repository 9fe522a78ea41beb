"""NRRD and MetaImage reading (raw: memory-mapped; compressed: read whole, or streamed) against SimpleITK
and pynrrd."""

from __future__ import annotations

import gzip
import zlib

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from engines.errors import InputError
from engines.io import read_volume
from engines.io.lazy_arrays import StreamedVoxels
from tests.engines.io.conftest import STREAM_KEYS, itk_array, itk_ras_affine

# A rotation that mixes all three axes (not a permutation), row-major as ITK stores it.
_ANGLES = np.radians([20.0, -35.0, 10.0])


def _direction() -> tuple[float, ...]:
    from scipy.spatial.transform import Rotation

    return tuple(Rotation.from_euler("xyz", _ANGLES).as_matrix().ravel())


def _itk_image(shape_xyz=(20, 16, 12), dtype=np.int16) -> sitk.Image:
    """A test image whose values vary along every axis, with anisotropic spacing, an offset origin and an
    oblique direction."""
    values = np.arange(np.prod(shape_xyz)).reshape(shape_xyz[::-1]) % 3000 - 1000
    image = sitk.GetImageFromArray(values.astype(dtype))  # array (z, y, x) -> image (x, y, z)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-12.5, 30.25, -60.0))
    image.SetDirection(_direction())
    return image


def _check_against_itk(path, *, memory_mapped: bool) -> None:
    volume = read_volume(path)
    reference = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.affine, itk_ras_affine(reference), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume.data), itk_array(reference))
    assert isinstance(volume.data, np.memmap) == memory_mapped
    assert volume.meta["memory_mapped"] == memory_mapped
    if memory_mapped:
        assert not volume.data.flags.writeable


@pytest.mark.parametrize("name", ["img.nrrd", "img.mha", "img.mhd", "img.nhdr"])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "compressed"])
def test_itk_written_files_match_simpleitk(tmp_path, name, compress):
    sitk.WriteImage(_itk_image(), str(tmp_path / name), useCompression=compress)
    _check_against_itk(tmp_path / name, memory_mapped=not compress)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int32])
def test_pixel_types_are_mapped_right(tmp_path, dtype):
    sitk.WriteImage(_itk_image(dtype=dtype), str(tmp_path / "t.mha"))
    volume = read_volume(tmp_path / "t.mha")
    assert volume.data.dtype == np.dtype(dtype)
    _check_against_itk(tmp_path / "t.mha", memory_mapped=True)


def test_mhd_with_raw_pair_is_memory_mapped_from_the_raw_file(tmp_path):
    sitk.WriteImage(_itk_image(), str(tmp_path / "pair.mhd"))
    assert (tmp_path / "pair.raw").exists() or (tmp_path / "pair.zraw").exists()
    volume = read_volume(tmp_path / "pair.mhd")
    assert volume.data.filename.endswith(".raw")


def test_big_endian_metaimage_written_by_hand(tmp_path):
    data = np.arange(5 * 4 * 3, dtype=">i2").reshape(3, 4, 5)  # (z, y, x) on disk, x fastest
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = True\n"
        "TransformMatrix = 0 1 0 -1 0 0 0 0 1\nOffset = 10 -20 30\nElementSpacing = 0.5 0.75 3\n"
        "DimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    )
    path = tmp_path / "msb.mha"
    path.write_bytes(header.encode() + data.tobytes())
    _check_against_itk(path, memory_mapped=True)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.data[:, :, 2], data[2].T)


_HAND_HEADER = ("ObjectType = Image\nNDims = 3\nBinaryDataByteOrderMSB = False\n"
                "TransformMatrix = 0 1 0 -1 0 0 0 0 1\nOffset = 10 -20 30\nElementSpacing = 0.8 1.2 2.5\n"
                "DimSize = 5 6 7\nElementType = MET_SHORT\n")
_HAND_VALUES = (np.arange(5 * 6 * 7) % 211 - 100).astype(np.int16).reshape(7, 6, 5)  # (z, y, x), x fastest


def test_ascii_metaimage_is_read_as_numbers_not_bytes(tmp_path):
    path = tmp_path / "ascii.mha"
    text = " ".join(str(v) for v in _HAND_VALUES.ravel())
    path.write_text(_HAND_HEADER.replace("NDims = 3", "NDims = 3\nBinaryData = False")
                    + "ElementDataFile = LOCAL\n" + text + "\n")
    _check_against_itk(path, memory_mapped=False)
    np.testing.assert_array_equal(read_volume(path).data, _HAND_VALUES.transpose())


def test_metaimage_with_a_list_of_slice_files(tmp_path):
    for k, plane in enumerate(_HAND_VALUES):
        plane.tofile(tmp_path / f"s{k}.raw")
    path = tmp_path / "list.mhd"
    path.write_text(_HAND_HEADER + "ElementDataFile = LIST 2D\n" + "".join(f"s{k}.raw\n" for k in range(7)))
    _check_against_itk(path, memory_mapped=False)
    np.testing.assert_array_equal(read_volume(path).data, _HAND_VALUES.transpose())


def test_nrrd_header_pynrrd_cannot_parse_is_read_by_itk(tmp_path):
    header = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 5 6 7\nencoding: raw\nendian: little\n"
              "space: left-posterior-superior\nspace directions: ( 0, 0.8, 0 ) ( 1.2, 0, 0 ) ( 0, 0, -2.5 )\n"
              "space origin: (10,-20,30)\n\n")  # spaces inside the vectors: valid NRRD, refused by pynrrd
    path = tmp_path / "spaces.nrrd"
    path.write_bytes(header.encode() + _HAND_VALUES.tobytes())
    _check_against_itk(path, memory_mapped=False)
    np.testing.assert_allclose(read_volume(path).affine[:3, :3], [[0, -1.2, 0], [-0.8, 0, 0], [0, 0, -2.5]])


def test_metaimage_modality_tag(tmp_path):
    image = _itk_image()
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    text = (tmp_path / "ct.mha").read_bytes()
    text = text.replace(b"ElementType", b"Modality = MET_MOD_CT\nElementType", 1)
    (tmp_path / "ct.mha").write_bytes(text)
    volume = read_volume(tmp_path / "ct.mha")
    assert volume.modality == "CT"
    np.testing.assert_array_equal(np.asarray(volume.data), sitk.GetArrayFromImage(image).transpose())


def test_pynrrd_detached_header_with_space_directions(tmp_path):
    data = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)  # pynrrd: (x, y, z), Fortran order
    rotation = np.asarray(_direction()).reshape(3, 3)
    header = {
        "space": "left-posterior-superior",
        "encoding": "raw",
        "space directions": rotation @ np.diag([1.5, 0.8, 2.0]),
        "space origin": np.array([5.0, -7.5, 100.0]),
    }
    path = tmp_path / "detached.nhdr"
    nrrd.write(str(path), data, header, detached_header=True)
    volume = read_volume(path)
    assert isinstance(volume.data, np.memmap)
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, itk_ras_affine(sitk.ReadImage(str(path))), atol=1e-4)
    # and against the header itself: columns of the LPS affine are the space directions
    expected = np.eye(4)
    expected[:3, :3] = header["space directions"].T
    expected[:3, 3] = header["space origin"]
    np.testing.assert_allclose(volume.affine, np.diag([-1, -1, 1, 1]) @ expected, atol=1e-4)


def test_ras_space_nrrd(tmp_path):
    data = np.ones((3, 4, 5), np.int16)
    header = {"space": "right-anterior-superior", "space directions": np.diag([2.0, 3.0, 4.0]),
              "space origin": np.array([1.0, 2.0, 3.0])}
    nrrd.write(str(tmp_path / "ras.nrrd"), data, header)
    volume = read_volume(tmp_path / "ras.nrrd")
    np.testing.assert_allclose(volume.affine[:3, :3], np.diag([2.0, 3.0, 4.0]))
    np.testing.assert_allclose(volume.affine[:3, 3], [1.0, 2.0, 3.0])
    assert volume.orientation == "RAS"


def test_4d_metaimage_shows_first_volume(tmp_path):
    frames = [_itk_image((6, 5, 4)) + i * 100 for i in range(3)]
    image = sitk.JoinSeries(frames)
    sitk.WriteImage(image, str(tmp_path / "t.mha"))
    volume = read_volume(tmp_path / "t.mha")
    assert volume.shape == (6, 5, 4)
    np.testing.assert_array_equal(volume.data, sitk.GetArrayFromImage(frames[0]).transpose())
    assert "3 volumes" in volume.warnings[0]


def test_truncated_raw_metaimage_is_refused(tmp_path):
    sitk.WriteImage(_itk_image(), str(tmp_path / "full.mha"))
    content = (tmp_path / "full.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(content[: len(content) - 1000])
    with pytest.raises(InputError, match="truncated") as info:
        read_volume(tmp_path / "cut.mha")
    assert info.value.path == str(tmp_path / "cut.mha")


def test_truncated_compressed_nrrd_is_refused(tmp_path):
    sitk.WriteImage(_itk_image(), str(tmp_path / "full.nrrd"), useCompression=True)
    content = (tmp_path / "full.nrrd").read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(content[: len(content) // 2])
    with pytest.raises(InputError):
        read_volume(tmp_path / "cut.nrrd")


def test_vector_image_is_refused(tmp_path):
    image = sitk.Compose(_itk_image(), _itk_image())
    sitk.WriteImage(image, str(tmp_path / "vec.nrrd"))
    with pytest.raises(InputError, match="2 values per voxel"):
        read_volume(tmp_path / "vec.nrrd")


@pytest.mark.parametrize("name", ["junk.nrrd", "junk.mha"])
def test_text_files_are_refused(tmp_path, name):
    (tmp_path / name).write_text("this is not an image\n")
    with pytest.raises(InputError, match="not a readable"):
        read_volume(tmp_path / name)


@pytest.mark.parametrize("name", ["img.nrrd", "img.nhdr", "img.mha", "img.mhd"])
@pytest.mark.parametrize("frames", [0, 1, 3], ids=["2D", "3D", "4D"])
def test_a_streamed_compressed_file_indexes_like_simpleitks_whole_read(tmp_path, name, frames):
    """A gzip NRRD (attached, or detached .raw.gz) and a zlib MetaImage (.mha, or .mhd with .zraw)."""
    if frames == 0:
        image = _itk_image((11, 9, 1))[:, :, 0]
    else:
        image = _itk_image((11, 9, 10))
        image = sitk.JoinSeries([image + 100 * i for i in range(frames)]) if frames > 1 else image
    sitk.WriteImage(image, str(tmp_path / name), useCompression=True)
    whole, streamed = read_volume(tmp_path / name), read_volume(tmp_path / name, stream=True)
    assert isinstance(streamed.data, StreamedVoxels) and not streamed.meta["memory_mapped"]
    reference = np.asarray(whole.data)
    np.testing.assert_array_equal(reference, itk_array(sitk.ReadImage(str(tmp_path / name))).reshape(
        reference.shape))
    assert streamed.shape == whole.shape and streamed.data.dtype == reference.dtype
    np.testing.assert_allclose(streamed.affine, whole.affine)
    assert (streamed.warnings, streamed.meta) == (whole.warnings, whole.meta | {"memory_mapped": False})
    for key in STREAM_KEYS if frames else [np.s_[...], np.s_[:, :, 0], np.s_[3:8, ::2]]:
        np.testing.assert_array_equal(streamed.data[key], reference[key], err_msg=str(key))


@pytest.mark.parametrize("stream", [False, True])
def test_a_bzip2_nrrd_is_read(tmp_path, stream):
    """pynrrd writes bzip2 (ITK cannot read it): decompressed with the standard library's bz2."""
    data = np.random.default_rng(5).integers(-1000, 3000, (9, 7, 10)).astype(np.int16)  # (x, y, z)
    nrrd.write(str(tmp_path / "b.nrrd"), data, {"encoding": "bzip2", "space": "left-posterior-superior",
                                                "space directions": np.diag([0.5, 0.7, 2.0])})
    volume = read_volume(tmp_path / "b.nrrd", stream=stream)
    assert isinstance(volume.data, StreamedVoxels) == stream
    np.testing.assert_array_equal(np.asarray(volume.data), data)
    np.testing.assert_allclose(volume.affine, np.diag([-0.5, -0.7, 2.0, 1.0]))


def test_big_endian_and_multi_member_gzip_nrrd_streams_its_values(tmp_path):
    data = np.random.default_rng(3).normal(0, 100, (7, 6, 5)).astype(">f8")  # (z, y, x), x fastest
    raw = data.tobytes()
    header = ("NRRD0004\ntype: double\ndimension: 3\nsizes: 5 6 7\nencoding: gzip\nendian: big\n"
              "space: right-anterior-superior\nspace directions: (0.5,0,0) (0,0.75,0) (0,0,2)\n"
              "space origin: (1,2,3)\n\n")
    path = tmp_path / "members.nrrd"  # two gzip members, as `cat a.gz b.gz` makes: one stream to gzip -d
    path.write_bytes(header.encode() + gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    volume = read_volume(path, stream=True)
    assert isinstance(volume.data, StreamedVoxels)
    np.testing.assert_array_equal(np.asarray(volume.data), data.transpose())
    np.testing.assert_array_equal(volume.data[:, :, 4:], data[4:].transpose())
    np.testing.assert_allclose(volume.affine[:3, 3], [1, 2, 3])


@pytest.mark.parametrize("cut", [-1, 0, 1])
def test_a_gzip_member_ending_at_a_read_boundary_is_followed_by_the_next(tmp_path, monkeypatch, cut):
    """Whether another member follows is told by its first two bytes; a read may end between them."""
    from engines.io import lazy_arrays

    data = np.arange(7 * 6 * 5, dtype=np.int16).reshape(7, 6, 5)
    raw = data.tobytes()
    first, second = gzip.compress(raw[:200]), gzip.compress(raw[200:])
    monkeypatch.setattr(lazy_arrays, "READ_PIECE", len(first) + 1 + cut)  # 0: a read ends 1 byte into it
    header = "NRRD0004\ntype: short\ndimension: 3\nsizes: 5 6 7\nencoding: gzip\nendian: little\n\n"
    (tmp_path / "m.nrrd").write_bytes(header.encode() + first + second)
    np.testing.assert_array_equal(np.asarray(read_volume(tmp_path / "m.nrrd").data), data.transpose())


def _damaged(tmp_path, name: str, change) -> str:
    """An ITK-written compressed file whose compressed bytes `change` alters (bytes -> bytes)."""
    sitk.WriteImage(_itk_image(), str(tmp_path / name), useCompression=True)
    content = (tmp_path / name).read_bytes()
    start = content.index(b"\x1f\x8b") if name.endswith(".nrrd") else content.index(b"= LOCAL\n") + 8
    path = tmp_path / f"damaged_{name}"
    path.write_bytes(content[:start] + change(content[start:]))
    return str(path)


def _stored_blocks(deflated: bytes, name: str) -> bytes:
    """The same data deflated without compression (stored blocks: a changed byte is a changed voxel), then
    a byte in the middle changed, so only the checksum tells."""
    gzipped = name.endswith(".nrrd")
    raw = gzip.decompress(deflated) if gzipped else zlib.decompress(deflated)
    stored = bytearray(gzip.compress(raw, compresslevel=0) if gzipped else zlib.compress(raw, 0))
    stored[len(stored) // 2] ^= 0x01
    return bytes(stored)


@pytest.mark.parametrize("name", ["img.nrrd", "img.mha"])
@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data[: len(data) // 2], "truncated"),
    (None, "corrupt"),
], ids=["truncated", "changed byte"])
@pytest.mark.parametrize("stream", [False, True])
def test_damage_in_a_compressed_file_is_named_when_reached(tmp_path, name, change, message, stream):
    """Read whole, or streamed (damage found when reached). A changed byte in a MetaImage's zlib data is
    found by its checksum: ITK reads it as a wrong voxel and only prints 'Uncompress failed'."""
    path = _damaged(tmp_path, name, change or (lambda data: _stored_blocks(data, name)))
    read = []
    with pytest.raises(InputError, match=message) as info:
        volume = read_volume(path, stream=stream)
        for plane in range(volume.shape[2]):
            read.append(volume.data[:, :, plane])
    assert info.value.path == path
    if stream and message == "truncated":  # the planes before the damage were read, then it was found
        assert len(read) >= volume.shape[2] // 3


@pytest.mark.parametrize("name", ["img.nhdr", "img.mhd"])
def test_a_missing_data_file_of_a_streamed_file_is_named_at_once(tmp_path, name):
    sitk.WriteImage(_itk_image(), str(tmp_path / name), useCompression=True)
    (data_file,) = [p for p in tmp_path.iterdir() if p.name != name]
    data_file.unlink()
    with pytest.raises(InputError, match="open") as info:  # ITK finds a NRRD's, Tessera a MetaImage's
        read_volume(tmp_path / name, stream=True)
    assert data_file.name in info.value.problem and info.value.path == str(tmp_path / name)
