"""The View dock in a real napari window: planes, window/level presets and drag, opacity, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QEvent, QPoint, QPointF, Qt
from qtpy.QtGui import QMouseEvent
from qtpy.QtWidgets import QApplication

from app.layers import image_layer, labels_layer, layer_affine
from app.planes import PLANES, current_plane, set_plane
from app.viewer import add_layers
from app.window_level import CT_PRESETS, from_contrast_limits
from engines.volume import Volume
from widgets.view_dock import ViewDock

pytestmark = pytest.mark.qt

# LPS-stored CT with anisotropic voxels: the layer adapter flips two axes, statistics must not care.
LPS_AFFINE = np.array([[-0.5, 0, 0, 40.0], [0, -2.0, 0, 30.0], [0, 0, 3.0, -10.0], [0, 0, 0, 1]])


def _ct(window=None) -> Volume:
    hu = np.linspace(-1000, 1500, 8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10)
    return Volume(hu, LPS_AFFINE, modality="CT", window=window, source="ct.nii")


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(900, 700)
    return viewer


@pytest.fixture
def dock(viewer):
    dock = ViewDock(viewer)
    viewer.window.add_dock_widget(dock, name="View")
    return dock


def test_plane_buttons_set_the_plane_and_follow_changes_made_elsewhere(viewer, dock):
    add_layers(viewer, [image_layer(_ct())])
    for plane, (order, _) in PLANES.items():
        dock.plane_buttons[plane].click()
        assert tuple(viewer.dims.order) == order and viewer.dims.ndisplay == 2
        assert current_plane(viewer) == plane
        assert [p for p, b in dock.plane_buttons.items() if b.isChecked()] == [plane]
    dock.plane_buttons["3d"].click()
    assert viewer.dims.ndisplay == 3
    set_plane(viewer, "sagittal")  # elsewhere: a menu, a script, the lead's shortcuts
    assert [p for p, b in dock.plane_buttons.items() if b.isChecked()] == ["sagittal"]
    viewer.dims.order = (0, 1, 2)  # a free order is none of the planes
    assert not any(b.isChecked() for b in dock.plane_buttons.values())


def test_each_ct_preset_sets_level_plus_minus_half_width_and_the_spin_boxes_show_it(viewer, dock):
    (layer,) = add_layers(viewer, [image_layer(_ct())])
    assert dock.image_label.text() == "Image: ct (CT)"
    for name, (width, level) in CT_PRESETS.items():
        dock.preset_buttons[name].click()
        assert tuple(layer.contrast_limits) == (level - width / 2, level + width / 2)
        assert (dock.width_spin.value(), dock.level_spin.value()) == (width, level)
    assert not dock.dicom_button.isEnabled()  # this CT has no DICOM window


def test_spin_boxes_set_the_window_and_follow_changes_made_elsewhere(viewer, dock):
    (layer,) = add_layers(viewer, [image_layer(_ct())])
    dock.width_spin.setValue(500)
    dock.level_spin.setValue(-100)
    assert tuple(layer.contrast_limits) == (-350, 150)
    layer.contrast_limits = (0, 100)
    assert (dock.width_spin.value(), dock.level_spin.value()) == (100, 50)


def test_dicom_window_preset_uses_the_files_centre_and_width(viewer, dock):
    (layer,) = add_layers(viewer, [image_layer(_ct(window=(-500.0, 1400.0)))])
    assert dock.dicom_button.isEnabled()
    dock.preset_buttons["bone"].click()
    dock.dicom_button.click()
    assert tuple(layer.contrast_limits) == (-1200, 200)


def test_mr_gets_the_percentile_window_and_no_hu_presets(viewer, dock):
    rng = np.random.default_rng(3)
    t1 = rng.gamma(3.0, 100.0, size=(40, 44, 36)).astype(np.float32)
    (layer,) = add_layers(viewer, [image_layer(Volume(t1, np.diag([1.0, 1.0, 1.2, 1.0]), modality="MR"))])
    assert not any(b.isEnabled() for b in dock.preset_buttons.values())
    layer.contrast_limits = (0, 1)
    dock.percentile_button.click()
    low, high = layer.contrast_limits
    p1, p99 = np.percentile(t1, [1, 99])
    assert low == pytest.approx(p1, rel=0.05) and high == pytest.approx(p99, rel=0.03)


def test_the_controls_act_on_the_selected_image(viewer, dock):
    first, second = add_layers(viewer, [image_layer(_ct()), image_layer(_ct(window=(40.0, 80.0)))])
    viewer.layers.selection.active = first
    dock.preset_buttons["lung"].click()
    assert from_contrast_limits(first.contrast_limits) == (1500, -600)
    assert from_contrast_limits(second.contrast_limits) == (80, 40)  # untouched
    viewer.layers.selection.active = second
    assert (dock.width_spin.value(), dock.level_spin.value()) == (80, 40)
    assert dock.dicom_button.isEnabled()


def _right_drag(viewer, qtbot, start: tuple[int, int], end: tuple[int, int], steps: int = 6) -> list[bool]:
    """Real Qt mouse events on the canvas, so napari, vispy and its camera all see them.

    Returns whether the camera's own mouse pan/zoom was enabled after each event.
    """
    canvas = viewer.window._qt_viewer.canvas.native
    right, none = Qt.MouseButton.RightButton, Qt.MouseButton.NoButton
    modifiers = Qt.KeyboardModifier.NoModifier
    camera_mouse = []

    def send(kind, pos, button, buttons):
        point = QPointF(*pos)
        global_point = QPointF(canvas.mapToGlobal(QPoint(*pos)))
        QApplication.sendEvent(canvas, QMouseEvent(kind, point, global_point, button, buttons, modifiers))
        qtbot.wait(15)  # napari throttles mouse moves (5 ms)
        camera_mouse.append(viewer.scene.camera.mouse_pan)

    send(QEvent.Type.MouseButtonPress, start, right, right)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        send(QEvent.Type.MouseMove, tuple(int(v) for v in np.add(start, t * np.subtract(end, start))), none,
             right)
    send(QEvent.Type.MouseButtonRelease, end, right, none)
    return camera_mouse


def test_right_drag_changes_the_window_and_not_the_zoom(viewer, dock, qtbot):
    (layer,) = add_layers(viewer, [image_layer(_ct())])
    set_plane(viewer, "axial")
    qtbot.wait(50)
    dock.preset_buttons["abdomen"].click()
    zoom, center = viewer.scene.camera.zoom, viewer.scene.camera.center

    camera_mouse = _right_drag(viewer, qtbot, (300, 300), (400, 300))  # to the right: wider
    width, level = from_contrast_limits(layer.contrast_limits)
    assert width > 400 and level == pytest.approx(50)
    # vispy's camera zooms on right-drag: it is kept out during the drag and given back on release.
    assert camera_mouse == [False] * 7 + [True]
    _right_drag(viewer, qtbot, (300, 300), (300, 360))  # down: higher level
    width2, level2 = from_contrast_limits(layer.contrast_limits)
    assert width2 == pytest.approx(width) and level2 > 50
    assert (dock.width_spin.value(), dock.level_spin.value()) == pytest.approx((width2, level2), abs=1e-3)
    assert viewer.scene.camera.zoom == pytest.approx(zoom)
    assert viewer.scene.camera.center == pytest.approx(center)


def test_label_opacity_slider_follows_the_chosen_labels_layer(viewer, dock):
    seg = Volume(np.zeros((8, 9, 10), dtype=np.uint8), LPS_AFFINE)
    first, second = add_layers(viewer, [labels_layer(seg, name="a"), labels_layer(seg, name="b")])
    assert dock.labels_choice.layer() is second  # top-most first
    dock.opacity_slider.setValue(20)
    assert second.opacity == pytest.approx(0.2) and first.opacity == pytest.approx(0.5)
    dock.labels_choice.set_layer(first)
    assert dock.opacity_slider.value() == 50
    first.opacity = 0.9
    assert dock.opacity_slider.value() == 90
    viewer.layers.remove(first)
    assert dock.labels_choice.layer() is second


def _known_pair() -> tuple[Volume, Volume]:
    """Labels and CT on one LPS grid of 0.5 x 2 x 3 = 3 mm³ voxels, with statistics worked out by hand."""
    labels = np.zeros((8, 9, 10), dtype=np.uint8)
    labels[0, 0, :2] = 1  # 2 voxels, HU 10 and 30: mean 20, SD 10
    labels[2:4, 3:6, 4:8] = 2  # 2*3*4 = 24 voxels, all -1000 HU
    hu = np.full(labels.shape, 500, dtype=np.int16)
    hu[0, 0, 0], hu[0, 0, 1] = 10, 30
    hu[labels == 2] = -1000
    image = Volume(hu, LPS_AFFINE, modality="CT", source="ct.nii")
    seg = Volume(labels, LPS_AFFINE, meta={"label_names": ["background", "nodule", "air"]}, source="seg.nii")
    return image, seg


def _compute_statistics(dock, qtbot) -> None:
    dock.stats_button.click()
    assert dock.stats_status.text().startswith("Computing")  # set at once; the table fills on return
    qtbot.waitUntil(lambda: dock.stats_status.text().endswith("labels"), timeout=20_000)


def _table(dock) -> list[list[str]]:
    table = dock.stats_table
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_statistics_table_for_a_known_labels_image_pair(viewer, dock, qtbot):
    image, seg = _known_pair()
    _, labels = add_layers(viewer, [image_layer(image), labels_layer(seg)])
    np.testing.assert_allclose(np.abs(np.linalg.det(layer_affine(labels)[:3, :3])), 3.0)
    assert dock.stats_image_choice.layer().name == "ct"
    _compute_statistics(dock, qtbot)
    assert _table(dock) == [
        ["1", "nodule", "2", "0.006", "20 ± 10"],
        ["2", "air", "24", "0.072", "-1000 ± 0"],
    ]

    dock.stats_image_choice.setCurrentIndex(0)  # "(no image)": counts and volumes only
    _compute_statistics(dock, qtbot)
    assert [row[4] for row in _table(dock)] == ["", ""]


def _oblique_pair() -> tuple[Volume, Volume]:
    """Labels (196, 64 and 1 voxels) and an image on one grid of 0.8 x 1.2 x 3 mm voxels turned 25°."""
    c, s = np.cos(np.radians(25)), np.sin(np.radians(25))
    affine = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]]) @ np.diag([0.8, 1.2, 3, 1])
    labels = np.zeros((20, 18, 10), np.uint8)
    labels[2:9, 3:10, 2:6], labels[10:14, 4:8, 5:9], labels[15, 15, 3] = 1, 2, 3
    values = np.arange(labels.size, dtype=np.float32).reshape(labels.shape)
    values[0, 0, 0] = np.nan  # a masked voxel, outside the labels: the image is unchanged all the same
    return Volume(values, affine, modality="MR", source="t2.nii"), Volume(labels, affine, source="seg.nii")


def test_statistics_of_oblique_layers_count_the_files_voxels_not_the_display_grid(viewer, dock, qtbot):
    """Shown resampled on an axis-aligned grid, a file voxel appears 0, 1 or several times there: counted
    there, the single voxel of label 3 (2.88 mm³) came out 2.37 mm³, label 1 had 238 voxels, not 196."""
    image, seg = _oblique_pair()
    add_layers(viewer, [image_layer(image), labels_layer(seg)])
    _compute_statistics(dock, qtbot)
    assert dock.stats_status.text() == "3 labels"
    voxel = abs(np.linalg.det(seg.affine[:3, :3]))
    for row, value in zip(_table(dock), (1, 2, 3), strict=True):
        inside = seg.data == value
        assert row[2] == f"{inside.sum():,}"
        assert float(row[3]) == pytest.approx(inside.sum() * voxel / 1000, rel=1e-3)
        mean, sd = (float(x) for x in row[4].split(" ± "))
        assert mean == pytest.approx(image.data[inside].mean(), rel=1e-3)
        assert sd == pytest.approx(image.data[inside].std(), rel=1e-3, abs=1e-3)


def test_statistics_of_oblique_labels_painted_since_count_the_grid_the_edits_are_on(viewer, dock, qtbot):
    image, seg = _oblique_pair()
    _, labels = add_layers(viewer, [image_layer(image), labels_layer(seg)])
    labels.data[0, 0, 0] = 4  # painted where the file has no label
    dock.stats_button.click()
    qtbot.waitUntil(lambda: "display grid" in dock.stats_status.text(), timeout=20_000)
    assert dock.stats_status.text().startswith("4 labels (counted on the oblique layers' display grid")
    assert [row[0] for row in _table(dock)] == ["1", "2", "3", "4"]


def test_statistics_refuse_an_image_on_another_grid_and_need_a_labels_layer(viewer, dock):
    before = len(notification_manager.records)
    dock.compute_statistics()
    image, seg = _known_pair()
    moved = LPS_AFFINE.copy()
    moved[0, 3] += 5.0  # same voxels, 5 mm to the right
    shifted = Volume(image.data, moved, modality="CT")
    add_layers(viewer, [image_layer(shifted), labels_layer(seg)])
    dock.compute_statistics()
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("Choose a labels layer" in m for m in messages), messages
    assert any("not on the same voxel grid" in m for m in messages), messages
    assert dock.stats_worker is None


def test_layer_choices_leave_out_a_cubes_layers(viewer):
    """A hyperspectral cube's bands are pixels, not a volume: no volume dock may take them as its source
    (live super-resolution on the band stack turned its mm layer on again over the cube)."""
    from napari.layers import Image

    from app.cube_layers import cube_layers
    from engines.cube import Cube
    from widgets.view_dock import LayerChoice

    volume = Volume(np.zeros((4, 5, 6), np.float32), np.eye(4))
    (scan,) = add_layers(viewer, [image_layer(volume, name="scan")])
    choice = LayerChoice(viewer, Image)
    cube = Cube(data=np.ones((6, 7, 5), np.float32), wavelengths_nm=np.linspace(400, 900, 5))
    bands, _ = add_layers(viewer, cube_layers(cube, "field"))
    viewer.layers.selection.active = bands
    assert [choice.itemData(i) for i in range(choice.count())] == [scan] and choice.layer() is scan
