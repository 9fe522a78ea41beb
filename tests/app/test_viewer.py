"""The configured viewer: planes and orientation letters, cursor readout, opening files in workers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QLabel

import app.layers
import app.viewer
from app import settings
from app.demo import ct_small_layers
from app.layers import image_layer, labels_layer
from app.orientation import camera, edge_letters
from app.planes import EDGE_LETTERS, PLANES, current_plane, set_plane
from app.viewer import add_layers, bring_into_view, configure_viewer, open_paths, scale_bar, software_opengl
from engines.volume import Volume

pytestmark = pytest.mark.qt

LPS_CT_AFFINE = np.array([[-0.7, 0, 0, 40.0], [0, -0.7, 0, 30.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])


@pytest.fixture
def viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    configure_viewer(viewer)
    viewer.window._qt_window.resize(900, 700)
    return viewer


def _ct_volume() -> Volume:
    hu = np.full((20, 24, 6), -1000, dtype=np.int16)
    hu[5:15, 6:18, 1:5] = 40
    hu[7, 9, 3] = 1234  # a voxel with a value found nowhere else
    return Volume(hu, LPS_CT_AFFINE, modality="CT")


def _letters(viewer) -> dict[str, str]:
    canvas = viewer.window._qt_viewer.canvas.native
    found = {}
    for edge in ("top", "bottom", "left", "right"):
        label = canvas.findChild(QLabel, f"tessera_orientation_{edge}")
        found[edge] = label.text() if label.isVisible() else ""
    return found


def _wait_for_layers(qtbot, viewer, n: int) -> None:
    qtbot.waitUntil(lambda: len(viewer.layers) >= n, timeout=30_000)


def test_viewer_is_set_up_for_a_ras_world(viewer):
    assert viewer.dims.axis_labels == ("R", "A", "S")
    assert scale_bar(viewer).visible
    assert current_plane(viewer) == "axial"
    assert all(v == "" for v in _letters(viewer).values())  # nothing loaded: no letters


def test_orientation_letters_follow_the_plane_and_hide_in_3d(viewer, qtbot):
    add_layers(viewer, [image_layer(_ct_volume())])
    for plane in PLANES:
        set_plane(viewer, plane)
        qtbot.wait(10)
        assert edge_letters(viewer) == EDGE_LETTERS[plane]
        letters = _letters(viewer)
        assert tuple(letters[e] for e in ("top", "bottom", "left", "right")) == EDGE_LETTERS[plane]
    # the labels sit on their edges of the canvas
    canvas = viewer.window._qt_viewer.canvas.native
    top, bottom, left, right = (canvas.findChild(QLabel, f"tessera_orientation_{e}").geometry()
                                for e in ("top", "bottom", "left", "right"))
    assert top.bottom() < canvas.height() / 2 < bottom.top()
    assert left.right() < canvas.width() / 2 < right.left()
    set_plane(viewer, "3d")
    assert all(v == "" for v in _letters(viewer).values())


def test_letters_follow_a_camera_flip(viewer):
    add_layers(viewer, [image_layer(_ct_volume())])
    set_plane(viewer, "coronal")
    camera(viewer).orientation2d = ("down", "right")
    assert edge_letters(viewer) == ("I", "S", "L", "R")


def test_cursor_readout_shows_voxel_world_and_hu(viewer, qtbot):
    volume = _ct_volume()
    add_layers(viewer, [image_layer(volume, name="ct")])
    world = (volume.affine @ [7, 9, 3, 1.0])[:3]
    viewer.dims.set_point(2, world[2])
    viewer.cursor.position = tuple(world)
    readout = viewer.window._qt_window.findChild(QLabel, "tessera_cursor_readout")
    qtbot.waitUntil(lambda: "1234 HU" in readout.text(), timeout=2000)
    text = readout.text()
    assert "voxel (7, 9, 3)" in text
    assert "RAS ({:.1f}, {:.1f}, {:.1f}) mm".format(*world) in text
    assert text.startswith("ct")
    # the neighbour along the file's first axis (LPS x: towards the patient's left = lower R) is soft tissue
    viewer.cursor.position = tuple(world - [0.7, 0, 0])
    qtbot.waitUntil(lambda: "voxel (8, 9, 3)" in readout.text(), timeout=2000)
    assert "40 HU" in readout.text()


def test_readout_outside_every_volume_gives_world_mm_only(viewer, qtbot):
    add_layers(viewer, [image_layer(_ct_volume())])
    viewer.dims.set_point(2, 500.0)
    viewer.cursor.position = (500.0, 500.0, 500.0)
    readout = viewer.window._qt_window.findChild(QLabel, "tessera_cursor_readout")
    qtbot.waitUntil(lambda: readout.text().startswith("RAS"), timeout=2000)
    assert "voxel" not in readout.text()


def test_pydicom_ct_small_displays_in_hu(viewer, qtbot):
    (ct,) = add_layers(viewer, ct_small_layers())
    assert ct.data.shape == (128, 128, 1)
    assert [str(u) for u in viewer.dims.units] == ["millimeter"] * 3  # what the scale bar shows
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    assert (shot.max(axis=2) > 60).mean() > 0.05  # the body section is drawn
    centre = (ct.metadata["volume"].affine @ [64, 64, 0, 1.0])[:3]
    readout = viewer.window._qt_window.findChild(QLabel, "tessera_cursor_readout")
    viewer.cursor.position = tuple(centre)
    qtbot.waitUntil(lambda: "voxel (64, 64, 0)" in readout.text(), timeout=2000)
    assert readout.text().endswith(" HU")


def test_a_single_slice_volume_displays(viewer, qtbot):
    # like pydicom's CT_small: 128x128x1, LPS
    data = np.zeros((128, 128, 1), np.int16)
    data[32:96, 32:96] = 200
    add_layers(viewer, [image_layer(Volume(data, LPS_CT_AFFINE, modality="CT"))])
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].max() > 200 and shot[..., :3].std() > 20  # the square is drawn


def test_an_oblique_volume_renders_and_its_labels_overlay(viewer, qtbot):
    tilt = np.deg2rad(15)
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.0, 1.0, 2.0])
    data = np.zeros((40, 40, 12), np.float32)
    data[10:30, 10:30] = 1.0
    image = Volume(data, affine, modality="MR")
    labels = Volume((data > 0).astype(np.uint8), affine)
    img_layer, lab_layer = add_layers(viewer, [image_layer(image), labels_layer(labels)])
    np.testing.assert_allclose(img_layer.affine.affine_matrix, lab_layer.affine.affine_matrix)
    qtbot.wait(50)
    viewer.layers[1].visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 20


def test_an_oblique_volume_far_from_the_origin_shows_its_true_plane_in_every_view(viewer, qtbot):
    """napari alone would draw the slice meant for the world origin: far from it, the wrong one or none."""
    tilt = np.deg2rad(20)
    affine = np.eye(4)
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    affine[:3, :3] = rotation @ np.diag([0.5, 0.7, 3.0])
    affine[:3, 3] = [-5.0, 60.0, 40.0]
    data = np.broadcast_to(np.arange(12, dtype=np.float32) * 10 + 100, (20, 14, 12)).copy()  # 10 k + 100
    (layer,) = add_layers(viewer, [image_layer(Volume(data, affine, modality="MR"))])
    centre = affine @ [9.5, 6.5, 5.5, 1.0]
    for plane in ("axial", "coronal", "sagittal"):
        set_plane(viewer, plane)
        for axis in range(3):
            viewer.dims.set_point(axis, float(centre[axis]))
        qtbot.wait(50)
        shot = viewer.screenshot(canvas_only=True, flash=False)
        assert shot[..., :3].max() > 50, plane  # something is drawn
        # what napari draws at the centre is the value of the file's voxel holding that display voxel
        # (slice 5 or 6 there: napari alone drew slices near 15 here, or nothing)
        grid_point = layer.data_to_world(np.rint(layer.world_to_data(centre[:3])))
        k = int(np.floor(np.linalg.solve(affine, [*grid_point, 1.0])[2] + 0.5))
        assert k in (5, 6)
        assert layer.get_value(centre[:3], world=True) == 10 * k + 100, plane


def test_open_paths_reads_in_a_worker_and_records_recent(viewer, qtbot, tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    done = []
    workers = open_paths(viewer, [path], on_done=lambda p, layers: done.append((p, layers)))
    assert len(workers) == 1
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    (layer,) = viewer.layers
    assert layer.name == "small"
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    assert done == [(str(path), [layer])]
    assert settings.recent_files() == [str(path)]


def test_open_paths_reports_a_bad_file_and_the_viewer_stays_usable(viewer, qtbot, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b this is not a gzip stream")
    good = tmp_path / "good.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4)), good)
    before = len(notification_manager.records)
    done = []
    open_paths(viewer, [bad, tmp_path / "missing.nii"], on_done=lambda p, layers: done.append(layers))
    qtbot.waitUntil(lambda: len(done) == 2, timeout=30_000)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any(str(bad) in m and m.startswith("Could not open") for m in messages), messages
    assert any("missing.nii" in m and "no such file" in m for m in messages), messages
    assert done == [None, None]
    assert len(viewer.layers) == 0
    assert settings.recent_files() == []
    open_paths(viewer, [good])  # still usable
    _wait_for_layers(qtbot, viewer, 1)


def test_what_the_reader_warns_about_is_shown_when_the_file_opens(viewer, qtbot, tmp_path):
    path = tmp_path / "four_d.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 2), np.float32), np.eye(4)), path)
    before = len(notification_manager.records)
    open_paths(viewer, [path])
    _wait_for_layers(qtbot, viewer, 1)
    qtbot.waitUntil(lambda: len(notification_manager.records) > before, timeout=5_000)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any(m.startswith("four_d.nii:") and "2 volumes: only the first is used" in m for m in messages)


def test_making_a_far_away_layer_visible_brings_it_into_view(viewer, qtbot):
    near = Volume(np.ones((10, 10, 10), np.float32), np.eye(4), modality="MR")
    far_affine = LPS_CT_AFFINE.copy()
    far_affine[2, 3] = -80.0
    far = Volume(np.ones((8, 8, 1), np.int16), far_affine, modality="CT")
    near_layer, far_layer = add_layers(viewer, [image_layer(near), image_layer(far, visible=False)])
    viewer.dims.set_point(2, 5.0)
    assert not bring_into_view(viewer, near_layer)  # already in the slice: nothing moves
    far_layer.visible = True
    assert viewer.dims.point[2] == pytest.approx(-80.0, abs=1.0)
    assert viewer.dims.point[2] == pytest.approx(-80.0, abs=0.5 * viewer.dims.range[2].step)


def test_a_hyperspectral_cube_is_sent_to_its_dock(viewer, qtbot, tmp_path):
    import tifffile

    cube = tmp_path / "field.tif"
    tifffile.imwrite(cube, np.zeros((5, 8, 9), np.uint16))
    before = len(notification_manager.records)
    done = []
    open_paths(viewer, [cube], on_done=lambda p, layers: done.append(layers))
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    (message,) = [str(n.message) for n in notification_manager.records[before:]]
    assert str(cube) in message and "Hyperspectral dock" in message
    assert len(viewer.layers) == 0


def test_startup_objects_are_frozen_after_one_collection() -> None:
    """Garbage left from start-up is freed first (frozen, it would stay for good); what is alive then is left
    out of later collections, which still free new garbage."""
    import gc
    import weakref

    from app.viewer import freeze_startup_objects

    class Node:
        pass

    def cycle() -> weakref.ref:
        node = Node()
        node.me = node
        return weakref.ref(node)

    try:
        gc.disable()  # no automatic collection may free the cycles before the calls below
        before = cycle()
        freeze_startup_objects()
        assert before() is None and gc.get_freeze_count() > 0
        after = cycle()
        gc.collect()
        assert after() is None
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_renderer_is_asked_once(viewer, monkeypatch):
    monkeypatch.setattr(app.viewer, "_renderer", [])
    software = software_opengl()
    assert len(app.viewer._renderer) == 1 and app.viewer._renderer[0]  # e.g. "llvmpipe (LLVM 15.0.6)"
    assert software == any(name in app.viewer._renderer[0].lower() for name in app.viewer.SOFTWARE_RENDERERS)

    def asked_again():
        raise AssertionError("the renderer was asked again")

    monkeypatch.setattr(app.viewer, "get_current_canvas", asked_again)
    assert software_opengl() == software  # the answer is kept: no GL call on every layer inserted


@pytest.mark.parametrize(("renderer", "hardware_limit", "level_3d"), [
    ("llvmpipe (LLVM 15.0.6, 256 bits)", 1 << 27, 2),  # software OpenGL: the coarsest level in 3D
    ("NVIDIA H200/PCIe/SSE2", 1 << 27, 0),  # a GPU: full resolution, as a single-scale layer
    ("NVIDIA H200/PCIe/SSE2", 10_000, 2),  # a GPU, but a volume over what it draws at interactive speed
])
def test_a_large_volume_shows_full_detail_in_3d_only_where_the_renderer_draws_it(
        viewer, qtbot, monkeypatch, renderer, hardware_limit, level_3d):
    monkeypatch.setattr(app.layers, "PREVIEW_VOXELS", 1000)  # 20 x 24 x 30 stands in for a 512^3 volume
    monkeypatch.setattr(app.viewer, "_renderer", [renderer])
    monkeypatch.setattr(app.viewer, "HARDWARE_3D_VOXELS", hardware_limit)
    volume = Volume(np.arange(20 * 24 * 30, dtype=np.float32).reshape(20, 24, 30), LPS_CT_AFFINE)
    (layer,) = add_layers(viewer, [image_layer(volume)])
    assert layer.multiscale and len(layer.data) == 3
    viewer.dims.ndisplay = 3
    qtbot.waitUntil(lambda: layer.data_level == level_3d, timeout=5_000)
    viewer.dims.ndisplay = 2
    if level_3d == 0:  # locked: 2D at full resolution too, whatever the zoom
        viewer.camera.zoom = 0.01
        qtbot.wait(50)
        assert layer.locked_data_level == 0 and layer.data_level == 0
    else:
        assert layer.locked_data_level is None
