"""Multi-band TIFF cubes through tifffile: band axis, memory mapping, wavelengths, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from engines.errors import InputError
from engines.io.cubes import read_cube, read_labels

RNG = np.random.default_rng(5)
CUBE = RNG.integers(0, 4000, size=(12, 10, 6)).astype(np.uint16)


def test_contiguous_samples_with_wavelengths(tmp_path: Path) -> None:
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, CUBE, photometric="minisblack", planarconfig="contig",
                     metadata={"wavelengths_nm": [450, 500, 550, 600, 650, 700]})
    cube = read_cube(path)
    assert cube.meta["band_axis"] == 2 and cube.meta["lazy"]
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE)
    assert cube.wavelengths_nm.tolist() == [450, 500, 550, 600, 650, 700]


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_band_planes(tmp_path: Path, compression: str | None) -> None:
    path = tmp_path / "planes.tiff"
    tifffile.imwrite(path, np.moveaxis(CUBE, -1, 0), photometric="minisblack", compression=compression)
    cube = read_cube(path)
    assert cube.meta["band_axis"] == 0
    assert cube.meta["lazy"] is (compression is None)
    assert cube.shape == CUBE.shape
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE)
    assert cube.wavelengths_nm is None


def test_pages_of_rows_are_told_from_pages_of_bands_by_the_ground_truth(tmp_path: Path) -> None:
    """`tifffile.imwrite(path, cube)` of a (rows, columns, bands) array stores one row per page."""
    tifffile.imwrite(tmp_path / "c.tif", CUBE)
    alone = read_cube(tmp_path / "c.tif")  # no ground truth: pages read as bands, with a warning
    assert alone.shape == (CUBE.shape[1], CUBE.shape[2], CUBE.shape[0])
    assert any("pages is read as one band" in w for w in alone.warnings)
    labels = RNG.integers(0, 5, size=CUBE.shape[:2]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c_gt.tif", labels)
    cube = read_cube(tmp_path / "c.tif")
    assert cube.shape == CUBE.shape and cube.meta["band_axis"] == 2
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE)
    np.testing.assert_array_equal(cube.labels, labels)
    assert any("read as the rows" in w for w in cube.warnings)
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(CUBE, -1, 0))  # bands first, confirmed by its gt
    tifffile.imwrite(tmp_path / "planes_gt.tif", labels)
    planes = read_cube(tmp_path / "planes.tif")
    np.testing.assert_array_equal(np.asarray(planes.data), CUBE)
    assert planes.warnings == []


def test_ground_truth_in_another_format_is_named_as_such(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", CUBE, photometric="minisblack", planarconfig="contig")
    np.save(tmp_path / "labels.npy", np.zeros(CUBE.shape[:2], np.uint8))
    with pytest.raises(InputError, match=r"ground truth is read from \.mat, ENVI .* not \.npy"):
        read_cube(tmp_path / "c.tif", gt=tmp_path / "labels.npy")


def test_gdal_band_metadata(tmp_path: Path) -> None:
    items = "".join(f'<Item name="wavelength" sample="{i}">{0.45 + 0.05 * i:.2f}</Item>'
                    f'<Item name="wavelength_units" sample="{i}">Micrometers</Item>' for i in range(6))
    path = tmp_path / "gdal.tif"
    tifffile.imwrite(path, np.moveaxis(CUBE, -1, 0), photometric="minisblack",
                     extratags=[(42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)])
    np.testing.assert_allclose(read_cube(path).wavelengths_nm, [450, 500, 550, 600, 650, 700])


def test_single_band_is_not_a_cube(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "flat.tif", CUBE[..., 0])
    with pytest.raises(InputError, match="one 3-D image"):
        read_cube(tmp_path / "flat.tif")


def test_tiff_ground_truth_beside(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", CUBE, photometric="minisblack", planarconfig="contig")
    labels = RNG.integers(0, 5, size=CUBE.shape[:2]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c_gt.tif", labels)
    cube = read_cube(tmp_path / "c.tif")
    np.testing.assert_array_equal(cube.labels, labels)
    assert cube.class_names == [f"Class {c}" for c in range(1, int(labels.max()) + 1)]
    np.testing.assert_array_equal(read_labels(tmp_path / "c_gt.tif")[0], labels)


def test_not_a_tiff(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_cube(tmp_path / "bad.tif")


def test_truncated_compressed_tiff_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, CUBE, photometric="minisblack", planarconfig="contig", compression="zlib")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 9 // 10])  # the end of its strips
    with pytest.raises(InputError, match="image data cannot be read") as info:
        read_cube(path)
    assert info.value.path == str(path)


def test_a_tiff_header_without_an_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_cube(tmp_path / "bad.tif")


def _gdal_tiff(path: Path, xml: str) -> Path:
    tifffile.imwrite(path, CUBE, photometric="minisblack", planarconfig="contig",
                     extratags=[(42112, "s", 0, xml, True)])
    return path


def _items(values: list, units: str | None = None) -> str:
    unit = "" if units is None else '<Item name="wavelength_units" sample="{}">' + units + "</Item>"
    items = "".join(f'<Item name="wavelength" sample="{i}">{v}</Item>' + unit.format(i)
                    for i, v in enumerate(values))
    return f"<GDALMetadata>{items}</GDALMetadata>"


@pytest.mark.parametrize("values, units", [
    (["0.45 um", 0.5, 0.55, 0.6, 0.65, 0.7], None),  # a unit on one item covers the bare ones
    (["450 nm", "500nm", "0.55 micrometers", "600 Nanometers", "0.65 micron", "700 nm"], None),
    (["0.45 um", "500 nm", 0.55, 0.6, 0.65, 0.7], "Micrometers"),
])
def test_gdal_wavelengths_with_their_own_units(tmp_path: Path, values: list, units: str | None) -> None:
    cube = read_cube(_gdal_tiff(tmp_path / "c.tif", _items(values, units)))
    np.testing.assert_allclose(cube.wavelengths_nm, [450, 500, 550, 600, 650, 700])


@pytest.mark.parametrize("values, match", [
    (["0.45 parsecs", 0.5, 0.55, 0.6, 0.65, 0.7], "of band 0 is '0.45 parsecs', not a number"),
    (["blue", 0.5, 0.55, 0.6, 0.65, 0.7], "of band 0 is 'blue', not a number"),
    (["0.45 um", "500 nm", 0.55, 0.6, 0.65, 0.7], "on some bands but not on others"),
])
def test_gdal_wavelengths_that_cannot_be_read_are_named(tmp_path: Path, values: list, match: str) -> None:
    path = _gdal_tiff(tmp_path / "c.tif", _items(values))
    with pytest.raises(InputError, match=match) as err:
        read_cube(path)
    assert err.value.path == str(path)


def test_a_gdal_band_number_that_is_not_one_is_named(tmp_path: Path) -> None:
    path = _gdal_tiff(tmp_path / "c.tif", '<GDALMetadata><Item name="wavelength" sample="band1">0.45</Item>'
                                         "</GDALMetadata>")
    with pytest.raises(InputError, match="sample='band1'") as err:
        read_cube(path)
    assert err.value.path == str(path)


def test_malformed_gdal_metadata_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """The pixels are fine and GDAL_METADATA only adds band metadata: the cube opens, without wavelengths."""
    xml = '<GDALMetadata><Item name="wavelength" sample="0">0.45</Item'
    cube = read_cube(_gdal_tiff(tmp_path / "c.tif", xml))
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE)
    assert cube.wavelengths_nm is None and any("not well-formed XML" in w for w in cube.warnings)


def test_gdal_wavelengths_for_other_bands_than_the_files_are_ignored_with_a_warning(tmp_path: Path) -> None:
    xml = "<GDALMetadata>" + "".join(f'<Item name="wavelength" sample="{i}">{400 + i}</Item>'
                                     for i in (0, 1, 2, 3, 4, 9)) + "</GDALMetadata>"
    cube = read_cube(_gdal_tiff(tmp_path / "c.tif", xml))
    assert cube.wavelengths_nm is None and any("not one for each of the 6 bands" in w for w in cube.warnings)


def test_a_band_per_page_tiff_cut_at_a_page_is_damaged_not_fewer_bands(tmp_path: Path) -> None:
    """Pages written one by one (as non-tifffile writers store stacks), the copy cut where page 4 begins."""
    full, cut = tmp_path / "full.tif", tmp_path / "cut.tif"
    with tifffile.TiffWriter(full) as tw:
        for band in np.moveaxis(CUBE, -1, 0):
            tw.write(band, photometric="minisblack", metadata=None, contiguous=False)
    assert read_cube(full).shape[2] == CUBE.shape[2]
    with tifffile.TiffFile(full) as tif:
        cut.write_bytes(full.read_bytes()[: tif.pages[4].offset])
    with pytest.raises(InputError, match=r"damaged.*invalid page offset") as err:
        read_cube(cut)
    assert err.value.path == str(cut)


def test_a_half_length_compressed_tiff_is_damaged_not_a_shape_problem(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.moveaxis(CUBE, -1, 0), compression="zlib")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="damaged") as err:
        read_cube(path)
    assert err.value.path == str(path) and "3-D image" not in str(err.value)


@pytest.mark.parametrize(("tag", "expected"), [("-9999", -9999.0), ("0.5\x00", 0.5), ("nan", None)])
def test_gdal_no_data_becomes_the_cubes_ignore_value(tmp_path: Path, tag: str, expected) -> None:
    """GDAL marks no-data pixels in GDAL_NODATA (42113), as ENVI in 'data ignore value': left out alike."""
    from engines.hyperspectral.display import pixel_spectrum

    data = np.random.default_rng(3).integers(0, 5000, (3, 8, 6)).astype(np.float32)
    data[:, 0, 0] = -9999.0 if expected is None else expected
    tifffile.imwrite(tmp_path / "c.tif", data, photometric="minisblack",
                     extratags=[(42113, "s", 0, tag, True)])
    cube = read_cube(tmp_path / "c.tif")
    assert cube.meta.get("data_ignore_value") == expected
    assert np.isnan(pixel_spectrum(cube, 0, 0)).all() == (expected is not None)


def test_gdal_no_data_that_is_no_number_is_named(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 8, 6), np.uint16), photometric="minisblack",
                     extratags=[(42113, "s", 0, "none", True)])
    with pytest.raises(InputError, match="GDAL_NODATA tag is 'none'") as info:
        read_cube(tmp_path / "c.tif")
    assert info.value.path == str(tmp_path / "c.tif")
