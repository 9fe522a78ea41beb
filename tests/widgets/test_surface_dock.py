"""The Surface dock: a labels layer -> Surface layer overlaying it in world mm, export, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QFileDialog
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from app.layers import labels_layer
from app.viewer import add_layers
from engines.volume import Volume
from widgets.surface_dock import SurfaceDock

pytestmark = pytest.mark.qt

# LPS voxel order with anisotropic spacing: the layer adapter reorders the axes into the layer affine; the
# mesh must land where the labels are anyway. OBLIQUE adds a rotation of 20° (labels shown resampled).
AFFINE = np.array([[-0.8, 0, 0, 30.0], [0, -1.5, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
_C, _S = np.cos(np.radians(20)), np.sin(np.radians(20))
OBLIQUE = np.array([[_C, -_S, 0, 0], [_S, _C, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) @ AFFINE


def _labels(affine: np.ndarray = AFFINE) -> Volume:
    labels = np.zeros((20, 14, 10), dtype=np.uint8)
    labels[3:9, 2:7, 2:6] = 1
    labels[11:17, 6:12, 4:8] = 2
    return Volume(labels, affine, meta={"label_names": ["background", "left", "right"]}, source="seg.nii")


def _world_box(volume: Volume, value: int) -> tuple[np.ndarray, np.ndarray]:
    """World bounds of a label's voxel cubes, straight from the Volume (not through any layer)."""
    index = np.argwhere(volume.data == value)
    corners = (index[:, None, :] + np.array(np.meshgrid(*[[-0.5, 0.5]] * 3)).T.reshape(-1, 3)).reshape(-1, 3)
    world = corners @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    return world.min(axis=0), world.max(axis=0)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def dock(viewer):
    dock = SurfaceDock(viewer)
    viewer.window.add_dock_widget(dock, name="Surface")
    return dock


def _finish(qtbot, dock) -> None:
    qtbot.waitUntil(lambda: dock.make_button.isEnabled(), timeout=30_000)


@pytest.mark.parametrize("affine", [AFFINE, OBLIQUE], ids=["lps", "oblique"])
def test_surface_overlays_the_labels_in_world_space_and_takes_their_colours(viewer, dock, qtbot, affine):
    volume = _labels(affine)
    # an oblique volume's labels are shown on an axis-aligned grid, by nearest label, but meshed from the
    # file's own voxels: the surface sits on their cubes as well (on the display grid, up to 1.45 mm off)
    slack = 1e-3
    (labels,) = add_layers(viewer, [labels_layer(volume)])
    progress = []
    dock.progress.connect(progress.append)
    dock.smoothing_spin.setValue(0)  # the bare flying-edges surface lies half way between voxel centres
    dock.decimate_spin.setValue(0.0)
    dock.make_button.click()
    _finish(qtbot, dock)

    surface = viewer.layers[-1]
    assert surface._type_string == "surface" and surface.name == "seg surface"
    assert progress[-1] == 1.0
    # No transform of its own: its vertices are world mm already.
    np.testing.assert_allclose(surface.affine.affine_matrix, np.eye(4))
    np.testing.assert_allclose(surface.scale, 1.0)
    assert surface.units == labels.units and surface.axis_labels == labels.axis_labels
    vertices, values = surface.vertices, surface.vertex_values
    assert set(np.unique(values)) == {1, 2}
    for value in (1, 2):
        low, high = _world_box(volume, value)
        mine = vertices[values == value]
        # Cutting half way between a label voxel and its neighbour spans the voxel cubes' corner box
        # along the voxel axes; rotated, the world box of the cut is inside the cubes' box by < 1 voxel.
        assert np.all(mine.min(axis=0) >= low - slack) and np.all(mine.max(axis=0) <= high + slack)
        np.testing.assert_allclose(mine.mean(axis=0), (low + high) / 2, atol=max(0.05, slack / 2))
    np.testing.assert_allclose(surface.vertex_colors[values == 2][0, :3], labels.colormap.map(2)[:3])


def test_oblique_labels_painted_since_they_were_opened_are_meshed_as_shown(viewer, dock, qtbot):
    """The edits live on the display grid: the mesh is made there, and takes them in."""
    volume = _labels(OBLIQUE)
    (labels,) = add_layers(viewer, [labels_layer(volume)])
    labels.data[0:3, 0:3, 0:3] = 2  # painted in a corner where the file has no label
    dock.smoothing_spin.setValue(0)
    dock.decimate_spin.setValue(0.0)
    dock.label_spin.setValue(2)
    dock.make_button.click()
    _finish(qtbot, dock)
    corner = (np.array([[0, 0, 0, 1], [2, 2, 2, 1]]) @ labels.affine.affine_matrix.T)[:, :3]
    nearest = np.linalg.norm(viewer.layers[-1].vertices - corner.mean(axis=0), axis=1).min()
    assert nearest < np.linalg.norm(corner[1] - corner[0])  # the painted corner has its surface


def test_one_label_smoothed_and_decimated(viewer, dock, qtbot):
    add_layers(viewer, [labels_layer(_labels())])
    dock.label_spin.setValue(2)
    dock.make_button.click()
    _finish(qtbot, dock)
    surface = viewer.layers[-1]
    assert surface.name == "seg surface (label 2)"
    assert set(np.unique(surface.vertex_values)) == {2}
    assert "triangles" in dock.status.text()


def test_cancel_frees_the_dock_at_once_and_the_worker_stops_without_a_surface(viewer, dock, qtbot):
    add_layers(viewer, [labels_layer(_labels())])
    assert not dock.cancel_button.isEnabled()
    dock.make_button.click()
    worker = dock.worker
    assert dock.cancel_button.isEnabled() and not dock.make_button.isEnabled()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        dock.cancel_button.click()
        assert dock.make_button.isEnabled() and dock.status.text() == "Surface cancelled."
    qtbot.wait(50)
    assert [layer._type_string for layer in viewer.layers] == ["labels"]  # no surface came after all
    assert not dock.cancel_button.isEnabled()


def test_export_writes_the_chosen_format(viewer, dock, qtbot, tmp_path, monkeypatch):
    add_layers(viewer, [labels_layer(_labels())])
    dock.make_button.click()
    _finish(qtbot, dock)
    surface = viewer.layers[-1]
    target = tmp_path / "brain.vtp"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    viewer.layers.selection.active = viewer.layers[0]  # not the surface: the last one made is exported
    dock.export_button.click()
    _finish(qtbot, dock)
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(target))
    reader.Update()
    assert reader.GetOutput().GetNumberOfPoints() == len(surface.vertices)
    assert reader.GetOutput().GetNumberOfPolys() == len(surface.faces)

    before = len(notification_manager.records)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "brain.ply"), ""))
    dock.export_button.click()
    _finish(qtbot, dock)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("unsupported mesh format '.ply'" in m for m in messages), messages
    assert not (tmp_path / "brain.ply").exists()


def test_bad_input_becomes_a_notification(viewer, dock, qtbot):
    before = len(notification_manager.records)
    dock.make_button.click()  # no labels layer at all
    dock.export_button.click()  # nothing to export
    add_layers(viewer, [labels_layer(_labels())])
    dock.label_spin.setValue(9)  # not in the labels
    dock.make_button.click()
    _finish(qtbot, dock)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("Choose a labels layer" in m for m in messages), messages
    assert any("before exporting" in m for m in messages), messages
    assert any("label 9 is not present" in m for m in messages), messages
    assert len(viewer.layers) == 1
