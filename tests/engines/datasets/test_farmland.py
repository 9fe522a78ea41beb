"""The SYNTHETIC farmland scene: shape, classes, determinism, difficulty, files through the real readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spectral
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from engines.datasets import farmland, spectra
from engines.io.cubes import read_cube

SIZE = (64, 56)


@pytest.fixture(scope="module")
def scene():
    return farmland.make_farmland_scene(SIZE, seed=0)


def test_shape_bands_and_labelling(scene) -> None:
    assert scene.shape == (*SIZE, 270) and scene.data.dtype == np.float32
    np.testing.assert_allclose(scene.wavelengths_nm, np.linspace(400, 1000, 270))
    assert scene.data.min() >= 0.0 and scene.data.max() < 1.5  # reflectance
    present = set(np.unique(scene.labels)) - {0}
    assert present == set(range(1, 12)) and len(scene.class_names) == 11  # >= 9 classes, all present
    assert 0.5 < (scene.labels > 0).mean() < 0.98  # field paths and mixed borders are unlabelled


def test_labelled_synthetic_everywhere(scene) -> None:
    assert "SYNTHETIC" in scene.meta["description"] and "SYNTHETIC" in scene.source
    assert scene.meta["synthetic"] is True and "SYNTHETIC" in farmland.SCENE_NAME


def test_deterministic_per_seed(scene) -> None:
    farmland._libraries.cache_clear()  # regenerate the radiative-transfer libraries too
    again = farmland.make_farmland_scene(SIZE, seed=0)
    np.testing.assert_array_equal(again.data, scene.data)
    np.testing.assert_array_equal(again.labels, scene.labels)
    other = farmland.make_farmland_scene(SIZE, seed=1)
    assert not np.array_equal(other.labels, scene.labels)


def test_classes_overlap_spectrally(scene) -> None:
    """A linear pixel classifier trained on half the labelled pixels must not classify the rest perfectly,
    while still doing far better than chance (the classes are separable, not noise)."""
    mask = scene.labels > 0
    x, y = scene.data[mask], scene.labels[mask]
    order = np.random.default_rng(0).permutation(y.size)
    a, b = order[::2], order[1::2]
    acc = LinearDiscriminantAnalysis().fit(x[a], y[a]).score(x[b], y[b])
    assert 0.5 < acc < 0.97


def test_vegetation_looks_like_vegetation(scene) -> None:
    wl = scene.wavelengths_nm
    red, nir = np.argmin(abs(wl - 670)), np.argmin(abs(wl - 850))
    corn = scene.data[scene.labels == 1].mean(0)
    water = scene.data[scene.labels == farmland.WATER].mean(0)
    assert corn[nir] > 4 * corn[red]  # red edge
    assert water[nir] < 0.06  # water absorbs the near infrared


def test_lab_spectra_come_from_spectral_test_data() -> None:
    """Independent parse of the ECOSTRESS concrete file: percent reflectance at 0.5 um."""
    path = Path(spectral.__file__).parent / "tests" / "data" / "ecostress" / "a.spectrum.txt"
    table = np.loadtxt(path, skiprows=21, encoding="latin-1")
    at_500 = table[np.argmin(abs(table[:, 0] - 0.5)), 1] / 100
    assert spectra.lab_spectrum("concrete")[100] == pytest.approx(at_500, rel=1e-6)
    for name in spectra.LAB_SPECTRA:
        s = spectra.lab_spectrum(name)
        assert s.shape == spectra.PROSAIL_NM.shape and s.min() > 0 and s.max() < 1


def test_resampling_keeps_flat_and_linear_spectra() -> None:
    centers = spectra.sensor_bands(270)
    flat = spectra.resample(np.full((1, spectra.PROSAIL_NM.size), 0.3), centers)
    np.testing.assert_allclose(flat, 0.3, rtol=1e-9)
    line = spectra.resample(spectra.PROSAIL_NM[None] / 1000.0, centers)[0]
    np.testing.assert_allclose(line[5:-5], centers[5:-5] / 1000.0, atol=1e-6)  # symmetric responses


def test_written_files_read_back_through_both_readers(tmp_path: Path) -> None:
    paths = farmland.write_demo_scene(tmp_path, size=(40, 36), seed=0, splits=(5,))
    mat, envi_cube = read_cube(paths["mat"]), read_cube(paths["envi"])
    reference = farmland.make_farmland_scene((40, 36), seed=0)
    stored = np.round(reference.data * farmland.REFLECTANCE_SCALE).astype(np.uint16)
    np.testing.assert_array_equal(mat.data, stored)
    np.testing.assert_array_equal(np.asarray(envi_cube.data), stored)
    for cube in (mat, envi_cube):
        np.testing.assert_array_equal(cube.labels, reference.labels)
        assert cube.class_names == list(farmland.CLASS_NAMES)
        np.testing.assert_allclose(cube.wavelengths_nm, reference.wavelengths_nm)
        assert cube.meta["reflectance_scale_factor"] == farmland.REFLECTANCE_SCALE
        assert cube.warnings == []
        assert "SYNTHETIC" in cube.meta["description"]
    assert set(mat.meta["splits"][5]) == {"train", "test"}


def test_demo_files_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path))
    first = farmland.demo_scene_files((32, 32), seed=0)
    stamp = first["mat"].stat().st_mtime_ns
    second = farmland.demo_scene_files((32, 32), seed=0)
    assert second["mat"] == first["mat"] and second["mat"].stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first["folder"].name]  # no temporary folder left


def test_too_small() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        farmland.make_farmland_scene((8, 40))
