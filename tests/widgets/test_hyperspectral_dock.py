"""The Hyperspectral dock: open a cube, bands with wavelengths, RGB, spectra, ground truth, Classify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cube_layers import PIXELS_KEY
from app.spaces import MILLIMETRES, show_space
from engines.datasets.farmland import CLASS_NAMES, write_demo_scene
from engines.hyperspectral.display import stretch
from engines.io.cubes import read_cube
from widgets.hyperspectral_dock import MAX_PIXEL_SPECTRA, REGIONS_LAYER, HyperspectralDock, _open

pytestmark = pytest.mark.qt


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_demo_scene(tmp_path_factory.mktemp("scene"), size=(40, 36), seed=0, splits=())


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def dock(viewer, qtbot, scene_files):
    dock = HyperspectralDock(viewer)
    viewer.window.add_dock_widget(dock, name="Hyperspectral")
    dock.load(str(scene_files["envi"]))
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=30_000)
    return dock


def test_open_shows_a_band_with_its_wavelength_and_the_ground_truth(dock, viewer, qtbot, scene_files) -> None:
    cube = read_cube(scene_files["envi"])
    assert "SYNTHETIC" in dock.info.text() and "40 x 36 pixels, 270 bands" in dock.info.text()
    assert dock.band_text.text() == f"band 136/270 · {cube.wavelengths_nm[135]:.1f} nm"  # the middle band
    np.testing.assert_array_equal(dock.band_layer.data, np.asarray(cube.data[..., 135], np.float32))
    dock.band_slider.setValue(10)
    assert dock.band_reader.busy  # read in a worker, not on the GUI thread
    qtbot.waitUntil(lambda: not dock.band_reader.busy, timeout=10_000)
    np.testing.assert_array_equal(dock.band_layer.data, np.asarray(cube.data[..., 10], np.float32))
    assert dock.band_text.text() == f"band 11/270 · {cube.wavelengths_nm[10]:.1f} nm"
    dock.band_slider.setValue(135)
    qtbot.waitUntil(lambda: not dock.band_reader.busy, timeout=10_000)
    np.testing.assert_array_equal(dock.band_layer.data, np.asarray(cube.data[..., 135], np.float32))
    assert dock.band_text.text() == f"band 136/270 · {cube.wavelengths_nm[135]:.1f} nm"
    np.testing.assert_array_equal(dock.gt_layer.data, cube.labels)
    assert dock.gt_layer.features["name"][1] == "Corn"  # napari names the class under the cursor
    legend = [dock.legend.item(i).text() for i in range(dock.legend.count())]
    assert len(legend) == len(CLASS_NAMES) and legend[0].startswith("1  Corn")


def test_another_cube_replaces_the_layers_one_per_turn(dock, viewer, qtbot, tmp_path: Path) -> None:
    """Each layer napari adds or removes holds the GUI thread for 100-400 ms: one per event-loop turn."""
    dock.show_rgb()
    qtbot.waitUntil(lambda: dock.rgb_layer is not None and not dock.rgb_reader.busy, timeout=10_000)
    old = list(viewer.layers)
    assert len(old) == 3
    other = write_demo_scene(tmp_path / "other", size=(18, 16), seed=1, splits=())["envi"]
    changes = []
    viewer.layers.events.inserted.connect(lambda e: changes.append(("+", e.value.name)))
    viewer.layers.events.removed.connect(lambda e: changes.append(("-", e.value.name)))
    dock.show_cube(*_open(str(other)))  # what a load does once its worker has read
    assert len(changes) == 1 and dock.cube is None and dock.turns.busy  # the rest wait for later turns
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=10_000)
    assert [c[0] for c in changes] == ["-", "-", "-", "+", "+"]
    assert [layer.name for layer in viewer.layers] == [f"{other.stem} band", f"{other.stem} ground truth"]
    assert dock.band_layer.data.shape == (18, 16) and dock.band_slider.isEnabled()
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], (8.5, 7.5), atol=1)  # fitted to the new cube
    assert dock.info.text().startswith(f"SYNTHETIC {other.stem}: 18 x 16 pixels")


def test_a_cube_shown_before_the_last_one_is_in_leaves_only_its_own_layers(dock, viewer, qtbot,
                                                                             tmp_path: Path) -> None:
    """The user opens B, then C while B's layers are still going in: A's and B's layers all go."""
    dock.show_rgb()
    qtbot.waitUntil(lambda: dock.rgb_layer is not None and not dock.rgb_reader.busy, timeout=10_000)
    b, c = (write_demo_scene(tmp_path / name, size=(18, 16), seed=i, splits=())["envi"]
            for i, name in enumerate(("b", "c")))
    dock.show_cube(*_open(str(b)))
    assert dock.turns.busy
    dock.show_cube(*_open(str(c)))
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=10_000)
    assert [layer.name for layer in viewer.layers] == [f"{c.stem} band", f"{c.stem} ground truth"]
    assert Path(dock.path) == c and dock.rgb_layer is None


def test_a_new_cube_takes_the_old_cubes_classification_maps_away(dock, viewer, qtbot, tmp_path: Path) -> None:
    from napari.layers import Labels

    old_map = Labels(np.zeros((40, 36), np.int32), name="old svm map", metadata={PIXELS_KEY: True})
    dock.map_layers.append(viewer.add_layer(old_map))
    other = write_demo_scene(tmp_path / "other", size=(18, 16), seed=1, splits=())["envi"]
    dock.show_cube(*_open(str(other)))
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=10_000)
    assert old_map not in viewer.layers and dock.map_layers == []


def test_actions_wait_while_a_cube_is_being_shown(dock, tmp_path: Path, monkeypatch) -> None:
    messages = []
    monkeypatch.setattr("widgets.hyperspectral_dock.notify_info", messages.append)
    other = write_demo_scene(tmp_path / "other", size=(18, 16), seed=1, splits=())["envi"]
    dock.show_cube(*_open(str(other)))
    dock.classify()
    dock.show_rgb()
    assert messages == ["The cube is still being shown: try again in a moment."] * 2
    assert not dock.panel.running and not dock.rgb_reader.busy


def test_rgb_composite_of_chosen_wavelengths(dock, qtbot, scene_files) -> None:
    cube = read_cube(scene_files["envi"])
    for spin, nm in zip(dock.rgb_spins, (700.0, 550.0, 450.0), strict=True):
        spin.setValue(nm)
    dock.stretch_spin.setValue(5.0)
    dock.show_rgb()
    qtbot.waitUntil(lambda: not dock.rgb_reader.busy, timeout=10_000)
    bands = [int(np.argmin(abs(cube.wavelengths_nm - nm))) for nm in (700, 550, 450)]
    assert dock.rgb_layer.metadata["bands"] == bands and dock.rgb_layer.rgb
    for i, b in enumerate(bands):  # each channel stretched on its own 5th..95th percentile
        np.testing.assert_allclose(dock.rgb_layer.data[..., i], stretch(cube.data[..., b], 5.0), atol=1e-6)


def test_pixel_spectra_and_region_statistics(dock, viewer, qtbot, scene_files) -> None:
    cube = read_cube(scene_files["envi"])
    spectrum = dock.add_spectrum(5, 7)
    np.testing.assert_allclose(spectrum, cube.data[5, 7] / 10000.0)
    dock.add_spectrum(20, 30)
    assert dock.pixels == [(5, 7), (20, 30)] and len(dock.axes.lines) == 2
    assert dock.add_spectrum(99, 0) is None  # outside the cube
    shapes = dock.regions_layer()
    assert shapes.name == REGIONS_LAYER
    shapes.add_rectangles(np.array([[2, 3], [10, 12]]))
    dock.plot_regions()
    qtbot.waitUntil(lambda: not dock.region_reader.busy, timeout=10_000)
    ((i, mean, sd, n),) = dock.region_stats
    assert i == 0 and dock.axes.lines[-1].get_label() == f"region 1 (n={n})"
    mask = shapes.to_masks(mask_shape=(40, 36))[0]
    values = cube.data[mask] / 10000.0
    assert n == mask.sum() > 0
    np.testing.assert_allclose(mean, values.mean(0))
    np.testing.assert_allclose(sd, values.std(0))
    dock.clear_spectra()
    assert dock.pixels == [] and len(dock.axes.lines) == 0


def test_classify_in_the_background(dock, viewer, qtbot) -> None:
    dock.method_combo.setCurrentText("gmlc")
    dock.per_class_spin.setValue(10)
    dock.quick_box.setChecked(True)
    command = dock.classify_command("map.tif")
    assert command[2:4] == ["hsi-bench", dock.path] and "--events" in command and "--quick" in command
    dock.classify()
    assert not dock.classify_button.isEnabled()
    qtbot.waitUntil(lambda: dock.classify_button.isEnabled(), timeout=120_000)
    assert dock.result is not None and dock.result["method"] == "gmlc"
    qtbot.waitUntil(lambda: any(layer.name.endswith("gmlc map") for layer in viewer.layers))  # (worker)
    maps = [layer for layer in viewer.layers if layer.name.endswith("gmlc map")]
    assert len(maps) == 1 and maps[0].data.shape == (40, 36)
    assert list(maps[0].features["name"]) == ["unlabelled", *dock.cube.class_names]  # under the cursor
    assert "OA" in dock.panel.status.text()


def test_a_classification_done_after_another_cube_opened_adds_no_map(dock, viewer, qtbot, tmp_path) -> None:
    """Its map is of the cube classified, not of the one shown now (same size, it would pass for it)."""
    first = Path(dock.path).stem
    dock.method_combo.setCurrentText("gmlc")
    dock.per_class_spin.setValue(10)
    dock.quick_box.setChecked(True)
    dock.classify()
    other = write_demo_scene(tmp_path / "other", size=(40, 36), seed=1, splits=())["envi"]
    dock.show_cube(*_open(str(other)))
    qtbot.waitUntil(lambda: dock.classify_button.isEnabled(), timeout=120_000)
    qtbot.wait(300)  # a map would be read in a worker and added a moment later
    assert not any(layer.name.endswith("gmlc map") for layer in viewer.layers) and dock.map_layers == []
    assert dock.panel.status.text().startswith(f"{first}: gmlc") and "no map" in dock.panel.status.text()


def test_cancel_is_not_a_failure(dock, viewer, qtbot) -> None:
    """SIGTERM right after the start kills python before its handler is in place: exit code != 0."""
    codes = []
    dock.panel.finished.connect(lambda code, _: codes.append(code))
    dock.method_combo.setCurrentText("svm")
    dock.classify()
    qtbot.waitUntil(lambda: dock.panel.job.running and dock.panel.job._process.processId() > 0)
    dock.cancel()
    qtbot.waitUntil(lambda: dock.classify_button.isEnabled(), timeout=60_000)
    assert codes and codes[0] != 0
    assert dock.panel.status.text() == "Classification cancelled."
    assert dock.result is None and not any(layer.name.endswith("svm map") for layer in viewer.layers)


def test_slider_reads_only_the_newest_band(dock, qtbot, monkeypatch) -> None:
    """Dragging the slider: one read runs, the requests made meanwhile collapse to the newest."""
    import widgets.hyperspectral_dock as module

    read = []

    def work(cube, band: int):
        read.append(band)
        return module.band_view(cube, band)

    monkeypatch.setattr(dock.band_reader, "work", work)
    for band in range(20, 30):
        dock.band_slider.setValue(band)
    qtbot.waitUntil(lambda: not dock.band_reader.busy, timeout=10_000)
    assert read[0] == 20 and read[-1] == 29 and len(read) < 10
    assert dock.band_text.text().startswith("band 30/270")
    np.testing.assert_array_equal(dock.band_layer.data, np.asarray(dock.cube.data[..., 29], np.float32))


def test_demo_scene_is_built_in_a_job_then_read(viewer, qtbot, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESSERA_CACHE", str(tmp_path / "cache"))
    dock = HyperspectralDock(viewer)
    command = dock.demo_command()
    assert command[2:] == ["hsi-demo", "--cached", "--events"]
    monkeypatch.setattr(dock, "demo_command", lambda: [*command, "--size", "24", "20"])
    dock.load_demo()
    assert dock.panel.running and dock.worker is None  # a process builds it, not a thread of the GUI
    assert not dock.demo_button.isEnabled()
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=120_000)
    assert dock.cube.shape == (24, 20, 270) and "SYNTHETIC" in dock.info.text()
    assert Path(dock.path).is_relative_to(tmp_path / "cache") and dock.demo_button.isEnabled()
    job, layer = dock.panel.job, dock.band_layer
    dock.load_demo()  # now cached: read at once, no second job
    assert dock.panel.job is job and dock.worker is not None
    # shown: the read is over and the new layers are in
    qtbot.waitUntil(lambda: dock.cube is not None and dock.band_layer not in (None, layer), timeout=30_000)


def test_a_cube_listed_red_to_blue_is_drawn_by_wavelength(viewer, qtbot, tmp_path: Path) -> None:
    from spectral.io import envi

    values = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    envi.save_image(str(tmp_path / "rev.hdr"), values, metadata={"wavelength": [900, 700, 500, 400],
                                                                  "wavelength units": "nm"})
    dock = HyperspectralDock(viewer)
    viewer.window.add_dock_widget(dock, name="Hyperspectral")
    dock.load(str(tmp_path / "rev.hdr"))
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=30_000)
    assert "400-900 nm" in dock.info.text() and "do not increase" in dock.info.text()
    dock.add_spectrum(2, 3)
    x, y = dock.axes.lines[0].get_data()
    np.testing.assert_array_equal(x, [400, 500, 700, 900])
    np.testing.assert_array_equal(y, values[2, 3, ::-1])
    dock.regions_layer().add_rectangles(np.array([[0, 0], [3, 3]]))
    dock.plot_regions()
    qtbot.waitUntil(lambda: not dock.region_reader.busy, timeout=10_000)
    (_, mean, _, _), = dock.region_stats
    np.testing.assert_allclose(dock.axes.lines[-1].get_ydata(), mean[::-1])


def test_old_pixel_spectra_go_but_region_lines_stay(dock, qtbot) -> None:
    dock.regions_layer().add_rectangles(np.array([[2, 3], [10, 12]]))
    dock.plot_regions()
    qtbot.waitUntil(lambda: not dock.region_reader.busy, timeout=10_000)
    for i in range(MAX_PIXEL_SPECTRA + 2):
        dock.add_spectrum(i, i)
    assert dock.pixels == [(i, i) for i in range(2, MAX_PIXEL_SPECTRA + 2)]
    labels = [line.get_label() for line in dock.axes.lines]
    assert labels[0].startswith("region 1 (n=") and len(labels) == MAX_PIXEL_SPECTRA + 1
    assert [label.split(" ")[0] for label in labels[1:]] == [
        f"({i}," for i in range(2, MAX_PIXEL_SPECTRA + 2)
    ]


def test_bad_file_is_a_notification(viewer, qtbot, tmp_path: Path) -> None:
    dock = HyperspectralDock(viewer)
    (tmp_path / "junk.mat").write_bytes(b"junk" * 50)
    dock.load(str(tmp_path / "junk.mat"))
    assert dock.info.text() == "Reading junk.mat…"
    qtbot.waitUntil(lambda: dock.info.text() == "No cube open.", timeout=30_000)  # and a notification
    assert dock.cube is None


class _Event:
    def __init__(self, position: tuple[float, ...]) -> None:
        self.position, self.type = position, "mouse_press"


def _drive(dock, event, moves: int) -> None:
    gen = dock._on_mouse(dock.viewer, event)
    next(gen)
    for _ in range(moves):
        event.type = "mouse_move"
        next(gen)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(gen)


def test_a_click_plots_that_pixel_and_a_drag_does_not(dock) -> None:
    _drive(dock, _Event((12.2, 8.7)), moves=0)
    assert dock.pixels == [(12, 9)]
    _drive(dock, _Event((3.0, 4.0)), moves=3)  # panning
    assert dock.pixels == [(12, 9)]
    dock.band_layer.visible = False  # the user hides the band: still the cube's view, still its clicks
    _drive(dock, _Event((5.0, 5.0)), moves=0)
    assert dock.pixels == [(12, 9), (5, 5)]
    show_space(dock.viewer, MILLIMETRES)  # volumes shown instead: clicks are theirs
    with pytest.raises(StopIteration):
        next(dock._on_mouse(dock.viewer, _Event((6.0, 6.0))))
    assert dock.pixels == [(12, 9), (5, 5)]


def test_in_plain_napari_a_cube_is_shown_apart_from_volumes(viewer, qtbot, scene_files) -> None:
    """The dock brings app.spaces along: a volume in mm makes way for the cube, and comes back when shown."""
    volume = viewer.add_image(np.zeros((4, 5, 6), np.float32), units=("mm", "mm", "mm"), name="scan")
    dock = HyperspectralDock(viewer)
    dock.load(str(scene_files["envi"]))
    qtbot.waitUntil(lambda: dock.cube is not None, timeout=30_000)
    assert not volume.visible and dock.band_layer.visible and dock.gt_layer.visible
    dock.show_rgb()
    qtbot.waitUntil(lambda: dock.rgb_layer is not None, timeout=10_000)
    assert dock.rgb_layer.visible and not volume.visible  # the cube's own layers keep its space
    volume.visible = True
    assert not dock.band_layer.visible and not dock.rgb_layer.visible and not dock.gt_layer.visible
