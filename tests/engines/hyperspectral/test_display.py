"""What the dock shows, without Qt: nearest bands, labels, stretch, spectra in reflectance."""

from __future__ import annotations

import numpy as np
import pytest

from engines.cube import Cube
from engines.hyperspectral.display import (
    band_label,
    nearest_band,
    pixel_spectrum,
    region_spectrum,
    rgb_composite,
    rgb_problems,
    stretch,
)

DATA = np.random.default_rng(0).integers(0, 10000, size=(6, 5, 4)).astype(np.uint16)
CUBE = Cube(
    DATA,
    wavelengths_nm=np.array([450.0, 550.0, 650.0, 750.0]),
    bad_bands=np.array([0, 0, 0, 1], bool),
    meta={"reflectance_scale_factor": 10000.0},
)


def test_nearest_band_and_label() -> None:
    assert [nearest_band(CUBE, nm) for nm in (640, 560, 300, 2000)] == [2, 1, 0, 3]
    assert band_label(CUBE, 2) == "band 3/4 · 650.0 nm"
    assert band_label(CUBE, 3).endswith("(bad band)")
    assert nearest_band(Cube(DATA), 2.4) == 2 and band_label(Cube(DATA), 0) == "band 1/4"


def test_stretch_maps_percentiles_to_0_and_1() -> None:
    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = stretch(img, 10.0)
    lo, hi = np.percentile(img, [10, 90])
    np.testing.assert_allclose(out, np.clip((img - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert np.all(stretch(np.ones((3, 3))) == 0)  # flat: no division by zero


def test_rgb_composite_uses_the_nearest_bands() -> None:
    rgb, bands = rgb_composite(CUBE, (640, 550, 460), percent=0.0)
    assert bands == [2, 1, 0] and rgb.shape == (6, 5, 3)
    ch = DATA[..., 2].astype(np.float32)
    np.testing.assert_allclose(rgb[..., 0], (ch - ch.min()) / (ch.max() - ch.min()), atol=1e-6)


def test_spectra_in_reflectance() -> None:
    np.testing.assert_allclose(pixel_spectrum(CUBE, 1, 2), DATA[1, 2] / 10000.0)
    mask = np.zeros((6, 5), bool)
    mask[2:4, 1:4] = True
    mean, sd, n = region_spectrum(CUBE, mask)
    assert n == 6
    np.testing.assert_allclose(mean, DATA[mask].mean(0) / 10000.0)
    np.testing.assert_allclose(sd, DATA[mask].std(0) / 10000.0)
    with pytest.raises(ValueError, match="no pixel"):
        region_spectrum(CUBE, np.zeros((6, 5), bool))


@pytest.mark.parametrize(("dtype", "ignore"), [(np.int16, -9999.0), (np.float32, -9999.9), (np.float64, 0.1)])
def test_no_data_value_is_left_out_of_spectra_and_stretch(dtype, ignore) -> None:
    """ENVI's "data ignore value" marks pixels without data (here -9999 in int16, or a value a float32 cube
    stores only rounded, as float32(-9999.9) != -9999.9): no mean, SD, count or percentile may include
    them."""
    data = np.random.default_rng(1).integers(0, 1000, size=(6, 5, 4)).astype(dtype)
    data[0, 0] = ignore  # a whole pixel without data
    data[2, 3, 1] = ignore  # one band of one pixel
    cube = Cube(data, meta={"data_ignore_value": ignore})
    mask = np.zeros((6, 5), bool)
    mask[0:3, 0:4] = True
    mean, sd, n = region_spectrum(cube, mask)
    missing = data == dtype(ignore)
    valid = np.where(missing, np.nan, data.astype(np.float64))[mask]
    assert n == 11  # 12 pixels, one without any data
    np.testing.assert_allclose(mean, np.nanmean(valid, axis=0))
    np.testing.assert_allclose(sd, np.nanstd(valid, axis=0))
    assert np.isnan(pixel_spectrum(cube, 0, 0)).all() and np.isnan(pixel_spectrum(cube, 2, 3)[1])
    rgb, _ = rgb_composite(cube, (0, 1, 2), percent=0.0)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    band = data[..., 1].astype(np.float32)
    inside = band[~missing[..., 1]]
    expected = (inside - inside.min()) / np.ptp(inside)
    np.testing.assert_allclose(rgb[..., 1][~missing[..., 1]], expected, atol=1e-6)
    with pytest.raises(ValueError, match="only no-data"):
        region_spectrum(cube, np.eye(6, 5, dtype=bool) & (np.arange(6)[:, None] == 0))


def test_rgb_problems_name_repeated_channels_missing_wavelengths_and_bad_bands() -> None:
    data = np.zeros((4, 3, 5), np.float32)
    swir = Cube(data, wavelengths_nm=np.linspace(900, 1700, 5), bad_bands=np.array([0, 0, 0, 0, 1], bool))
    bands = [nearest_band(swir, w) for w in (640, 550, 460)]
    (problem,) = rgb_problems(swir, (640, 550, 460), bands)
    assert problem == ("640/550/460 nm fall on 1 band(s) of a cube spanning 900-1700 nm, so its channels "
                       "repeat")
    assert rgb_problems(swir, (1700, 1300, 900), [4, 2, 0]) == [
        "band 5 (counting from 1) flagged bad in the file"]
    assert rgb_problems(swir, (1500, 1300, 900), [3, 2, 0]) == []
    bare = Cube(data)
    (problem,) = rgb_problems(bare, (640, 550, 460), [nearest_band(bare, w) for w in (640, 550, 460)])
    assert "no wavelengths" in problem and "bands 5/5/5 of 5" in problem
