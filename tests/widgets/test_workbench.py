"""The whole Tessera window on the demo data: docks present, a real image on the canvas, a screenshot.

With TESSERA_SAVE_SCREENSHOT=1 the window screenshot is written to docs/demo_window.png (the README's
picture); otherwise to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtWidgets import QWidget
from skimage.io import imsave

from app import settings
from app.demo import T1_NAME, TISSUE_NAME
from app.planes import current_plane
from engines.datasets.pydicom_samples import CT_SMALL_NAME
from widgets.workbench import DOCKS, open_workbench

pytestmark = pytest.mark.qt

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo_window.png"


def _dismiss_notifications(window: QWidget) -> None:
    for widget in window.findChildren(QWidget):
        if type(widget).__name__ == "NapariQtNotification":  # napari's toast; keeps the canvas clear
            widget.close()


def test_demo_workbench_shows_docks_and_anatomy(qtbot, tmp_path):
    viewer = open_workbench(demo=True)
    try:
        window = viewer.window._qt_window
        window.resize(1500, 950)
        qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=60_000)
        assert [layer.name for layer in viewer.layers] == [T1_NAME, TISSUE_NAME, CT_SMALL_NAME]
        assert not viewer.layers[CT_SMALL_NAME].visible  # elsewhere in patient space: starts hidden
        assert viewer.title == "Tessera"
        assert current_plane(viewer) == "axial"
        assert {title for _, title, _ in DOCKS} <= set(viewer.window.dock_widgets)
        qtbot.wait(200)
        _dismiss_notifications(window)
        qtbot.wait(100)

        canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
        lit = (canvas.max(axis=2) > 40).mean()
        assert 0.05 < lit < 0.9, lit  # a brain slice, neither blank nor a flat fill
        assert canvas.std() > 30

        shot = viewer.screenshot(canvas_only=False, flash=False)
        assert shot.shape[0] >= 800 and shot.shape[1] >= 1200
        assert np.unique(shot[..., :3].reshape(-1, 3), axis=0).shape[0] > 256  # not blank
        save_to_docs = os.environ.get("TESSERA_SAVE_SCREENSHOT") == "1"
        target = DOCS_SCREENSHOT if save_to_docs else tmp_path / "demo.png"
        imsave(target, shot, check_contrast=False)
        assert target.stat().st_size > 10_000
    finally:
        viewer.close()


def test_a_cube_on_the_command_line_opens_in_the_hyperspectral_dock(qtbot, tmp_path):
    from engines.datasets.farmland import write_demo_scene
    from widgets.hyperspectral_dock import HyperspectralDock

    files = write_demo_scene(tmp_path / "scene", size=(24, 20), seed=0, splits=())
    nifti = tmp_path / "scan.nii"
    nib.save(nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4)), str(nifti))
    viewer = open_workbench([str(files["envi"]), str(nifti)])
    try:
        dock = viewer.window.dock_widgets["Hyperspectral"]
        assert isinstance(dock, HyperspectralDock)
        # the cube (band and ground-truth layers) and the volume open in workers of their own, in any order
        qtbot.waitUntil(lambda: dock.cube is not None and "scan" in [layer.name for layer in viewer.layers],
                        timeout=60_000)
        assert dock.cube.shape == (24, 20, 270)  # the volume still opens as a layer (waited for above)
        recent = viewer.window.dock_widgets["Open"].recent  # shown in the recent list as it opens
        qtbot.waitUntil(lambda: recent.count() > 0 and recent.item(0).text() == "scan.nii", timeout=10_000)
    finally:
        viewer.close()


def test_a_dicom_folder_from_the_command_line_opens_the_series_asked_for(qtbot, tmp_path):
    from tests.engines.io.dicom_factory import SeriesSpec, ramp_values, write_series

    big = SeriesSpec(ramp_values((6, 5, 7)), description="big")
    small = SeriesSpec(ramp_values((6, 5, 3), low=0, high=50), description="small", modality="MR")
    write_series(tmp_path, big, prefix="B")
    write_series(tmp_path, small, prefix="S")
    nifti = tmp_path.parent / f"{tmp_path.name}_scan.nii"  # a file beside: the UID is not its business
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.eye(4)), str(nifti))
    viewer = open_workbench([str(tmp_path), str(nifti)], series_uid=small.series_uid)
    try:
        qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=60_000)
        series = next(layer for layer in viewer.layers if layer.name != nifti.stem)
        assert series.data.shape[2] == 3  # the small series, not the folder's largest
        assert series.name == f"{tmp_path.name} (small)"
        recent = {entry.path: entry for entry in settings.recent_entries()}  # Recent reopens that series
        assert recent[str(tmp_path)].series_uid == small.series_uid and recent[str(tmp_path)].series == \
            "MR 'small'"
        assert recent[str(nifti)].series_uid is None
    finally:
        viewer.close()


def test_the_window_fits_a_laptop_screen_and_each_dock_scrolls_its_controls(qtbot):
    """The docks stacked on the right once made the window at least 1207 pixels tall (past a 1080-pixel
    screen's bottom, napari's slider and status bar with it). Each dock now scrolls its controls instead."""
    from qtpy.QtWidgets import QDockWidget, QScrollArea

    viewer = open_workbench()
    try:
        window = viewer.window._qt_window
        assert window.minimumSizeHint().height() <= 700  # a 1366x768 screen, less a task bar
        window.resize(1300, 700)
        qtbot.waitUntil(lambda: window.height() == 700, timeout=5_000)
        train = viewer.window.dock_widgets["Train 3D (partitioned)"]
        dock = train
        while not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        dock.raise_()  # its tab to the front
        area = train.findChild(QScrollArea)
        qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 0, timeout=5_000)  # taller: it scrolls
        log = train.panel.log_view
        assert log.visibleRegion().isEmpty()  # the dock's bottom is below the fold...
        area.ensureWidgetVisible(log)
        qtbot.waitUntil(lambda: not log.visibleRegion().isEmpty(), timeout=5_000)  # ...and scrolls into view
    finally:
        viewer.close()


@pytest.mark.parametrize("dock", ["Surface", "View"])
def test_closing_the_window_while_a_dock_job_runs_drops_its_result(qtbot, dock):
    """Its result arrives after the dock's Qt widgets are deleted: it is dropped, nothing raised in the event
    loop (pytest-qt fails the test on one)."""
    from app.layers import labels_layer
    from app.viewer import add_layers
    from engines.volume import Volume

    labels = np.zeros((120, 120, 120), np.uint8)
    labels[10:110, 10:110, 10:110] = 1
    labels[30:90, 30:90, 30:90] = 2
    viewer = open_workbench()
    add_layers(viewer, [labels_layer(Volume(labels, np.eye(4), source="seg.nii"))])
    widget = viewer.window.dock_widgets[dock]
    (widget.make_button if dock == "Surface" else widget.stats_button).click()
    worker = widget.worker if dock == "Surface" else widget.stats_worker
    done = []
    worker.finished.connect(lambda: done.append(True))
    viewer.close()
    qtbot.waitUntil(lambda: bool(done), timeout=60_000)
    qtbot.wait(1000)  # its result is handled a moment after the worker ends
