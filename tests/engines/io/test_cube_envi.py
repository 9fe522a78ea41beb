"""ENVI cubes: files written by spectral's own writer, in every interleave and byte order, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from spectral.io import envi

from engines.errors import InputError
from engines.hyperspectral.display import nearest_band
from engines.io.cubes import is_cube_path, read_cube

RNG = np.random.default_rng(7)
CUBE = RNG.integers(-500, 3000, size=(9, 6, 5)).astype(np.int16)
WAVELENGTHS_UM = [0.41, 0.52, 0.63, 0.74, 0.85]


def _write(folder: Path, name: str, data: np.ndarray = CUBE, **kwargs) -> Path:
    meta = {"wavelength": WAVELENGTHS_UM, "wavelength units": "Micrometers", "fwhm": [0.01] * data.shape[2],
            "bbl": [1, 1, 0, 1, 1], "data ignore value": -999, "reflectance scale factor": 10000}
    meta.update(kwargs.pop("metadata", {}))
    hdr = folder / f"{name}.hdr"
    envi.save_image(str(hdr), data, metadata=meta, force=True, **kwargs)
    return hdr


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byteorder", [0, 1])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_every_interleave_and_byte_order(tmp_path: Path, interleave: str, byteorder: int, dtype) -> None:
    data = CUBE.astype(dtype)
    hdr = _write(tmp_path, "c", data, interleave=interleave, byteorder=byteorder, ext=f".{interleave}")
    cube = read_cube(hdr)
    assert isinstance(cube.data, np.memmap) or isinstance(cube.data.base, np.memmap)  # not loaded
    assert cube.shape == data.shape
    np.testing.assert_array_equal(np.asarray(cube.data), data)
    assert cube.meta["interleave"] == interleave
    assert cube.meta["byte_order"] == ("big" if byteorder else "little")
    np.testing.assert_allclose(cube.wavelengths_nm, [410, 520, 630, 740, 850])
    np.testing.assert_allclose(cube.meta["fwhm_nm"], 10.0)
    np.testing.assert_array_equal(cube.bad_bands, [False, False, True, False, False])
    assert cube.meta["data_ignore_value"] == -999
    assert cube.meta["reflectance_scale_factor"] == 10000


def test_data_file_with_header_beside(tmp_path: Path) -> None:
    _write(tmp_path, "scene", interleave="bil", ext=".raw")
    data_file = tmp_path / "scene.raw"
    assert is_cube_path(data_file) and is_cube_path(tmp_path / "scene.hdr")
    np.testing.assert_array_equal(np.asarray(read_cube(data_file).data), CUBE)
    assert read_cube(data_file).source == str(data_file)


def test_nanometres_and_guessed_units(tmp_path: Path) -> None:
    hdr = _write(tmp_path, "nm", metadata={"wavelength": [400, 500, 600, 700, 800], "wavelength units": "nm"})
    assert read_cube(hdr).wavelengths_nm.tolist() == [400, 500, 600, 700, 800]
    hdr = _write(tmp_path, "unk", metadata={"wavelength units": "Unknown"})
    cube = read_cube(hdr)
    np.testing.assert_allclose(cube.wavelengths_nm, [410, 520, 630, 740, 850])
    assert any("units 'Unknown' not recognised: read as micrometres" in w for w in cube.warnings)
    hdr = _write(tmp_path, "none")
    _edit_header(hdr, drop="wavelength units")
    assert "wavelength units" not in hdr.read_text()
    cube = read_cube(hdr)
    np.testing.assert_allclose(cube.wavelengths_nm, [410, 520, 630, 740, 850])
    assert any(w.startswith("no wavelength units given: read as micrometres") for w in cube.warnings)


@pytest.mark.parametrize(("units", "values", "nm"), [
    ("Millimeters", [0.0004, 0.0005, 0.0006, 0.0007, 0.0008], [400, 500, 600, 700, 800]),
    ("Meters", [4e-7, 5e-7, 6e-7, 7e-7, 8e-7], [400, 500, 600, 700, 800]),
    ("Angstroms", [4000, 5000, 6000, 7000, 8000], [400, 500, 600, 700, 800]),
    ("Index", [1, 2, 3, 4, 5], None),
    ("Wavenumber", [25000, 20000, 16667, 14286, 12500], None),
    ("GHz", [749481, 599585, 499654, 428275, 374741], None),
])
def test_every_envi_wavelength_unit(tmp_path: Path, units: str, values: list, nm: list | None) -> None:
    cube = read_cube(_write(tmp_path, "u", metadata={"wavelength": values, "wavelength units": units}))
    if nm is None:  # not a length: no wavelengths rather than made-up ones, and the user is told
        assert cube.wavelengths_nm is None and "fwhm_nm" not in cube.meta
        assert any(units in w and "bands are shown by number" in w for w in cube.warnings)
    else:
        np.testing.assert_allclose(cube.wavelengths_nm, nm)
        assert cube.warnings == []


def test_classification_ground_truth_beside(tmp_path: Path) -> None:
    hdr = _write(tmp_path, "field")
    labels = RNG.integers(0, 4, size=CUBE.shape[:2]).astype(np.uint8)
    names = ["Unclassified", "a", "b", "c"]
    envi.save_classification(str(tmp_path / "field_gt.hdr"), labels, class_names=names, force=True)
    cube = read_cube(hdr)
    np.testing.assert_array_equal(cube.labels, labels)
    assert cube.class_names == ["a", "b", "c"]


def _edit_header(hdr: Path, drop: str | None = None, replace: tuple[str, str] | None = None) -> None:
    lines = hdr.read_text().splitlines()
    if drop:
        lines = [ln for ln in lines if not ln.startswith(drop)]
    text = "\n".join(lines) + "\n"
    if replace:
        text = text.replace(*replace)
    hdr.write_text(text)


@pytest.mark.parametrize("field", ["samples", "lines", "bands", "data type", "interleave", "byte order"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    hdr = _write(tmp_path, "c")
    _edit_header(hdr, drop=field)
    with pytest.raises(InputError, match=f"missing required field.*{field}"):
        read_cube(hdr)


def test_header_disagrees_with_file_size(tmp_path: Path) -> None:
    hdr = _write(tmp_path, "c", interleave="bsq", ext=".img")
    data_file = tmp_path / "c.img"
    data_file.write_bytes(data_file.read_bytes()[:-10])
    with pytest.raises(InputError, match=r"disagrees with the data file size.*540 bytes.*530 bytes"):
        read_cube(hdr)
    _write(tmp_path, "d", interleave="bsq", ext=".img")
    _edit_header(tmp_path / "d.hdr", replace=("lines = 9", "lines = 10"))
    with pytest.raises(InputError, match="disagrees"):
        read_cube(tmp_path / "d.hdr")


@pytest.mark.parametrize("wavelengths", [[0.41, 0.52, 0.50, 0.74, 0.85], [0.85, 0.74, 0.52, 0.50, 0.41],
                                         [0.41, 0.52, 0.52, 0.74, 0.85]])
def test_wavelengths_that_do_not_increase_are_read_in_the_files_order_with_a_warning(
    tmp_path: Path, wavelengths: list[float]
) -> None:
    """Overlapping detectors (VNIR/SWIR) and files listed red to blue exist: read, not refused."""
    hdr = _write(tmp_path, "c", metadata={"wavelength": wavelengths, "wavelength units": "micrometers"})
    cube = read_cube(hdr)
    np.testing.assert_allclose(cube.wavelengths_nm, np.array(wavelengths) * 1000)
    assert any("wavelengths do not increase" in w for w in cube.warnings)
    assert nearest_band(cube, 745) == wavelengths.index(0.74)


def test_wrong_number_of_wavelengths(tmp_path: Path) -> None:
    hdr = _write(tmp_path, "c", metadata={"wavelength": [0.41, 0.52]})
    with pytest.raises(InputError, match="'wavelength' has 2 values for 5 bands"):
        read_cube(hdr)


def test_header_without_data_file(tmp_path: Path) -> None:
    hdr = _write(tmp_path, "c", ext=".img")
    (tmp_path / "c.img").unlink()
    with pytest.raises(InputError, match="no ENVI data file"):
        read_cube(hdr)


def test_analyze_header_is_not_a_cube(tmp_path: Path) -> None:
    analyze = tmp_path / "brain.hdr"
    analyze.write_bytes(np.int32(348).tobytes() + bytes(344))  # Analyze 7.5: binary, sizeof_hdr = 348
    (tmp_path / "brain.img").write_bytes(bytes(8))
    assert not is_cube_path(analyze)
    assert not is_cube_path(tmp_path / "brain.img")
    with pytest.raises(InputError, match="not a hyperspectral cube"):
        read_cube(analyze)


@pytest.mark.parametrize("field, value", [("data ignore value", "none"), ("reflectance scale factor", "n/a"),
                                          ("reflectance scale factor", "0")])
def test_a_header_number_that_is_not_one_is_named(tmp_path: Path, field: str, value: str) -> None:
    hdr = _write(tmp_path, "c")
    _edit_header(hdr, drop=field)
    hdr.write_text(hdr.read_text() + f"{field} = {value}\n")
    with pytest.raises(InputError, match=f"{value}") as err:  # spectral itself names a bad scale factor
        read_cube(hdr)
    assert err.value.path == str(hdr)
