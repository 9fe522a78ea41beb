"""The Open dock: file and folder pickers (dialogs monkeypatched), series choice, recent files, summary."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QFileDialog, QInputDialog

from app import settings
from app.layers import layer_volume
from app.viewer import configure_viewer
from engines.volume import Volume
from tests.engines.io.dicom_factory import OBLIQUE_IOP, SeriesSpec, write_series
from widgets.open_dock import OpenDock, volume_summary

pytestmark = pytest.mark.qt


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    configure_viewer(viewer)
    dock = OpenDock(viewer)
    qtbot.addWidget(dock)
    return dock


def _nifti(path, shape=(6, 7, 8), dtype=np.int16):
    data = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.75, 2.0, 1.0])), path)
    return data


def _wait_idle(qtbot, dock):
    qtbot.waitUntil(lambda: dock.status.text() == "", timeout=30_000)


def test_open_file_adds_the_volume_summarises_it_and_remembers_it(dock, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "head.nii.gz"
    data = _nifti(path)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    dock.file_button.click()
    _wait_idle(qtbot, dock)
    (layer,) = dock.viewer.layers
    assert isinstance(layer, Image)
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    summary = dock.summary.text()
    assert "shape 6 x 7 x 8 (int16)" in summary
    assert "spacing 0.5 x 0.75 x 2 mm" in summary
    assert "orientation RAS" in summary
    assert dock.recent.count() == 1 and dock.recent.item(0).toolTip() == str(path)
    # double-click on the recent entry opens it again
    dock.recent.itemDoubleClicked.emit(dock.recent.item(0))
    qtbot.waitUntil(lambda: len(dock.viewer.layers) == 2, timeout=30_000)


def test_cancelled_dialogs_open_nothing(dock, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([], ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    dock.file_button.click()
    dock.folder_button.click()
    assert len(dock.viewer.layers) == 0
    assert dock.status.text() == ""


def test_open_as_labels(dock, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "seg.nii"
    _nifti(path, dtype=np.uint8)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    dock.as_labels.setChecked(True)
    dock.file_button.click()
    qtbot.waitUntil(lambda: len(dock.viewer.layers) == 1, timeout=30_000)
    assert isinstance(dock.viewer.layers[0], Labels)


def test_a_folder_with_two_series_lets_the_user_choose(dock, qtbot, tmp_path, monkeypatch):
    big = SeriesSpec(values=np.zeros((8, 6, 5)), description="big series")
    small = SeriesSpec(values=np.full((4, 3, 2), 100.0), description="small series", iop=OBLIQUE_IOP)
    write_series(tmp_path / "study", big, prefix="B")
    write_series(tmp_path / "study", small, prefix="S")
    offered = {}

    def get_item(parent, title, label, items, current, editable):
        offered.update(items=items, current=current)
        return items[1], True  # the user picks the second (smaller) series

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "study"))
    monkeypatch.setattr(QInputDialog, "getItem", get_item)
    dock.folder_button.click()
    qtbot.waitUntil(lambda: len(dock.viewer.layers) == 1, timeout=30_000)
    assert "big series" in offered["items"][offered["current"]]  # the largest is the default
    assert "small series" in offered["items"][1]
    volume = layer_volume(dock.viewer.layers[0])
    assert volume.shape == (4, 3, 2)
    assert "oblique by" in dock.summary.text()
    _wait_idle(qtbot, dock)
    assert dock.file_button.isEnabled()


def _two_series(folder):
    big = SeriesSpec(values=np.zeros((8, 6, 5)), description="big series")
    small = SeriesSpec(values=np.full((4, 3, 2), 100.0), description="small series", modality="MR")
    write_series(folder, big, prefix="B")
    write_series(folder, small, prefix="S")
    return big, small


def test_a_recent_dicom_folder_reopens_the_series_chosen_not_the_largest(dock, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "study"
    _, small = _two_series(folder)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a: (a[3][1], True))  # items[1]: the small series
    dock.folder_button.click()
    qtbot.waitUntil(lambda: len(dock.viewer.layers) == 1, timeout=30_000)
    _wait_idle(qtbot, dock)
    before = len(notification_manager.records)
    dock.recent.itemDoubleClicked.emit(dock.recent.item(0))
    qtbot.waitUntil(lambda: len(dock.viewer.layers) == 2, timeout=30_000)
    _wait_idle(qtbot, dock)
    first, again = (layer_volume(layer) for layer in dock.viewer.layers)
    assert again.shape == first.shape == (4, 3, 2)
    assert again.meta["series_uid"] == small.series_uid
    assert not any("2 series" in str(n.message) for n in notification_manager.records[before:])
    (item,) = [dock.recent.item(i) for i in range(dock.recent.count())]  # one entry: the chosen series
    assert item.text() == "study — MR 'small series'"
    assert str(folder) in item.toolTip() and small.series_uid in item.toolTip()
    assert dock.viewer.layers[0].name == "study (small series)"  # told apart from "study (big series)"
    assert [(e.path, e.series_uid) for e in settings.recent_entries()] == [(str(folder), small.series_uid)]


def test_a_recent_series_gone_from_its_folder_is_reported_not_replaced(dock, qtbot, tmp_path):
    folder = tmp_path / "study"
    big, _ = _two_series(folder)
    settings.add_recent(folder, series_uid="1.2.3.4", series="MR 'T2 axial'")
    dock.refresh_recent()
    before = len(notification_manager.records)
    dock.recent.itemDoubleClicked.emit(dock.recent.item(0))
    qtbot.waitUntil(lambda: len(notification_manager.records) > before, timeout=30_000)
    _wait_idle(qtbot, dock)
    message = str(notification_manager.records[-1].message)
    assert str(folder) in message and "no series with UID 1.2.3.4" in message and big.series_uid in message
    assert len(dock.viewer.layers) == 0  # not the folder's largest instead
    assert settings.recent_entries()[0].series_uid == "1.2.3.4"  # the folder is still there: kept


def test_a_recent_file_that_vanished_is_reported_and_dropped(dock, qtbot, tmp_path):
    gone = tmp_path / "gone.nii"
    settings.add_recent(gone)
    dock.refresh_recent()
    before = len(notification_manager.records)
    dock.recent.itemDoubleClicked.emit(dock.recent.item(0))
    _wait_idle(qtbot, dock)
    assert any("gone.nii" in str(n.message) for n in notification_manager.records[before:])
    assert settings.recent_files() == []
    assert dock.recent.count() == 0


def test_an_unwritable_config_folder_leaves_the_dock_usable(dock, qtbot, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "file" / "cfg"))  # cannot be made
    dock.open([str(tmp_path / "gone.nii")])
    _wait_idle(qtbot, dock)
    assert dock.file_button.isEnabled() and dock.folder_button.isEnabled()
    assert "Reading" not in dock.status.text()


def test_summary_lists_window_and_warnings():
    volume = Volume(np.zeros((2, 3, 4), np.int16), np.diag([-0.7, -0.7, 5.0, 1.0]), modality="CT",
                    window=(40.0, 400.0), warnings=["slice 3 is missing"], source="/data/ct")
    text = volume_summary(volume, "ct")
    assert text.splitlines()[0] == "ct"
    assert "orientation LPS    modality CT" in text
    assert "window W 400 / L 40" in text
    assert "warning: slice 3 is missing" in text
    assert "oblique" not in text


def test_plain_napari_gets_the_dock_from_the_plugin(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("tessera", "Open")
    assert isinstance(widget, OpenDock)
    path = tmp_path / "plain.nii"
    _nifti(path)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    widget.file_button.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=30_000)
    assert "shape 6 x 7 x 8" in widget.summary.text()


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_folder_without_dicom_is_reported(dock, qtbot, tmp_path, monkeypatch, kind):
    folder = tmp_path / kind
    if kind == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("no images here")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    before = len(notification_manager.records)
    dock.folder_button.click()
    qtbot.waitUntil(lambda: len(notification_manager.records) > before, timeout=30_000)
    _wait_idle(qtbot, dock)
    message = str(notification_manager.records[-1].message)
    assert str(folder) in message
    assert ("not a folder" if kind == "missing" else "no DICOM images") in message
    assert len(dock.viewer.layers) == 0 and dock.folder_button.isEnabled()
