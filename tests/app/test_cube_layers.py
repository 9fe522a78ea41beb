"""Hyperspectral cubes as napari layers (app.cube_layers): what plain napari's reader and the dock show."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.io
from spectral.io import envi

from app.cube_layers import class_map_layer, cube_layers, read_cube_file
from engines.cube import Cube
from engines.errors import InputError
from engines.io.cubes import read_cube

RNG = np.random.default_rng(3)


def _envi(folder: Path, name: str, nm: list[float] | None, *, bands: int = 6, **meta) -> Path:
    data = RNG.integers(100, 4000, size=(7, 5, bands)).astype(np.int16)
    data[0, :2] = -999  # no data: outside the flight line
    metadata = {"data ignore value": -999, **meta}
    if nm is not None:
        metadata.update({"wavelength": nm, "wavelength units": "nm"})
    hdr = folder / f"{name}.hdr"
    envi.save_image(str(hdr), data, metadata=metadata, interleave="bip", force=True)
    return hdr


def test_bands_are_a_lazy_stack_with_no_data_as_nan(tmp_path):
    cube = read_cube(_envi(tmp_path, "scene", [450, 500, 550, 600, 650, 700]))
    (bands, kwargs, kind), *_ = cube_layers(cube, "scene")
    assert kind == "image" and isinstance(bands, da.Array)
    assert bands.shape == (6, 7, 5) and kwargs["axis_labels"] == ("band", "row", "column")
    stored = np.asarray(cube.data, dtype=np.float32)
    for b in range(6):
        expected = np.where(stored[..., b] == -999, np.nan, stored[..., b])
        np.testing.assert_array_equal(np.asarray(bands[b]), expected)
    lo, hi = kwargs["contrast_limits"]
    middle = stored[..., 3][stored[..., 3] != -999]
    assert middle.min() <= lo < hi <= middle.max()  # the no-data value counts in no limit
    np.testing.assert_array_equal(kwargs["metadata"]["wavelengths_nm"], [450, 500, 550, 600, 650, 700])


@pytest.mark.parametrize(("nm", "rgb_name"), [
    ([450, 500, 550, 600, 650, 700], "scene RGB 650/550/450 nm"),
    ([1000, 1300, 1600, 1900, 2200, 2500], None),  # SWIR only: the three bands would be one
    ([400, 500, 600], None),  # no red band at 640 nm
    (None, None),  # band numbers, not wavelengths
])
def test_rgb_composite_only_when_the_wavelengths_span_it(tmp_path, nm, rgb_name):
    cube = read_cube(_envi(tmp_path, "scene", nm, bands=6 if nm is None else len(nm)))
    rgb = [layer for layer in cube_layers(cube, "scene") if layer[1].get("rgb")]
    assert [layer[1]["name"] for layer in rgb] == ([rgb_name] if rgb_name else [])
    if rgb:
        data = rgb[0][0]
        assert data.shape == (7, 5, 3) and data.min() >= 0.0 and data.max() <= 1.0
        assert not rgb[0][1]["visible"]


def test_ground_truth_names_its_classes(tmp_path):
    labels = RNG.integers(0, 3, size=(7, 5)).astype(np.int32)
    cube = Cube(data=np.zeros((7, 5, 4), np.float32), labels=labels, class_names=["Corn", "Water"])
    (_, _, kind), (gt, kwargs, gt_kind) = cube_layers(cube, "field")
    assert (kind, gt_kind, kwargs["name"]) == ("image", "labels", "field ground truth")
    np.testing.assert_array_equal(gt, labels)
    assert list(kwargs["features"]["name"]) == ["unlabelled", "Corn", "Water"]
    assert "features" not in class_map_layer(labels, [], "no names")[1]


def test_a_class_map_file_opens_as_labels(tmp_path):
    gt = RNG.integers(0, 4, size=(7, 5)).astype(np.uint8)
    hdr = tmp_path / "scene_gt.hdr"
    envi.save_classification(str(hdr), gt, class_names=["Unclassified", "Corn", "Rice", "Water"], force=True)
    mat = tmp_path / "Train25.mat"
    scipy.io.savemat(mat, {"SFtrain25": gt})
    for path, names in ((hdr, ["unlabelled", "Corn", "Rice", "Water"]), (mat, None)):
        (layer,), warnings = read_cube_file(str(path))
        data, kwargs, kind = layer
        assert (kind, kwargs["name"], warnings) == ("labels", path.stem, [])
        np.testing.assert_array_equal(data, gt)
        assert (list(kwargs["features"]["name"]) if "features" in kwargs else None) == names


def test_a_mat_file_with_neither_cube_nor_labels_is_named(tmp_path):
    mat = tmp_path / "notes.mat"
    scipy.io.savemat(mat, {"weights": RNG.random((4, 4))})  # a 2-D matrix, but not whole numbers
    with pytest.raises(InputError, match="no recognisable cube") as caught:
        read_cube_file(str(mat))
    assert str(mat) in str(caught.value)


def test_reading_reports_what_it_found(tmp_path):
    hdr = _envi(tmp_path, "scene", None, bands=3)
    hdr.write_text(hdr.read_text() + "wavelength = {0.45, 0.55, 0.65}\n")  # micrometres, units not said
    layers, warnings = read_cube_file(str(hdr))
    assert any(w.startswith("no wavelength units given") for w in warnings)
    assert layers[1][1]["name"] == "scene RGB 650/550/450 nm"
