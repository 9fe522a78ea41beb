"""The Super-resolution dock in a real napari window: world alignment, scrolling, bad scales, export, jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

from app.layers import image_layer, layer_affine, unchanged_source
from app.planes import set_plane
from app.viewer import add_layers
from engines.volume import Volume
from widgets.superres_dock import REFINE_MODEL, SR_KEY, SuperResolutionDock

pytestmark = pytest.mark.qt

# Voxel axes (0, 1, 2) -> world (-A, +S, -R) ("PSL"), spacings 1.2 / 2.0 / 0.9 mm: the layer adapter
# reorders the axes to R, A, S (an oblique volume would be shown resampled: tests/app/test_layers.py).
_C, _S = 1.0, 0.0
AFFINE = np.eye(4)
AFFINE[:3, :3] = np.array([[_C, -_S, 0], [_S, _C, 0], [0, 0, 1]]) @ np.array(
    [[0, 0, -0.9], [-1.2, 0, 0], [0, 2.0, 0]])
AFFINE[:3, 3] = (12.0, -30.0, 8.0)
SHAPE = (24, 14, 22)
BLOB = (9.3, 7.6, 13.2)  # voxel position of the blob's peak


def _volume(shape=SHAPE, source: str = "") -> Volume:
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    blob = np.exp(-(((i - BLOB[0]) / 3.0) ** 2 + ((j - BLOB[1]) / 2.0) ** 2 + ((k - BLOB[2]) / 3.5) ** 2))
    return Volume((100 + 900 * blob).astype(np.float32), AFFINE, modality="MR", source=source)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def dock(viewer):
    dock = SuperResolutionDock(viewer)
    viewer.window.add_dock_widget(dock, name="Super-resolution")
    return dock


@pytest.fixture
def source(viewer):
    (layer,) = add_layers(viewer, [image_layer(_volume())])
    set_plane(viewer, "axial")
    centre = AFFINE @ np.r_[BLOB, 1]
    viewer.dims.set_point(2, centre[2])  # the axial slice through the blob
    return layer


def _network_result(qtbot, dock, trigger) -> None:
    """Run `trigger` and wait until the network's result (not just bicubic) is shown."""
    kinds = []
    dock.result_shown.connect(kinds.append)
    trigger()
    qtbot.waitUntil(lambda: "network" in kinds, timeout=60_000)
    dock.result_shown.disconnect(kinds.append)


def _centroid(data) -> np.ndarray:
    """Voxel-index centroid of the blob (values above the background of 100)."""
    data = np.asarray(data, dtype=np.float64)
    weights = np.clip(data - 100.0, 0, None).ravel()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1).reshape(-1, 3)
    return (index * weights[:, None]).sum(0) / weights.sum()


def test_sr_slice_sits_over_the_original_in_world_mm(viewer, dock, source, qtbot):
    dock.set_scales(2.0, 1.5)
    _network_result(qtbot, dock, lambda: dock.live_check.setChecked(True))
    sr = dock.layer
    assert sr is not None and sr in viewer.layers and sr.metadata[SR_KEY]["model"] == "sr_light"
    # axial plane: data axes of the layer are (R, A, S); S is sliced, A (rows) x1.5, R (columns) x2
    k = sr.metadata[SR_KEY]["index"]
    assert sr.data.shape == (44, 36, 1)
    # the world point of the original's brightest voxel in this slice shows the same anatomy in the SR layer
    plane = np.asarray(source.data[:, :, k], dtype=np.float64)
    i, j = np.unravel_index(np.argmax(plane), plane.shape)
    world = np.asarray(source.data_to_world((i, j, k)))
    idx = np.round(np.asarray(sr.world_to_data(world))).astype(int)
    assert idx[2] == 0
    assert abs(sr.data[tuple(idx)] - plane[i, j]) < 0.05 * (plane.max() - 100)
    # the blob of the SR slice has the world centroid of the original slice's blob (to 0.05 mm)
    src_centre = source.data_to_world(_centroid(source.data[:, :, k:k + 1]) + np.array([0, 0, k]))
    np.testing.assert_allclose(sr.data_to_world(_centroid(sr.data)), src_centre, atol=0.05)
    assert "ms" in dock.latency_label.text()
    assert viewer.layers.selection.active is source  # the dock's source stays chosen


def test_the_sr_slice_follows_the_scroll(viewer, dock, source, qtbot):
    dock.set_scales(2.5)
    _network_result(qtbot, dock, lambda: dock.live_check.setChecked(True))
    first = dock.layer.metadata[SR_KEY]["index"]
    point = list(viewer.dims.point)
    point[2] += 2 * 2.0  # two slices (2 mm) up
    _network_result(qtbot, dock, lambda: viewer.dims.set_point(2, point[2]))
    sr = dock.layer
    k = sr.metadata[SR_KEY]["index"]
    assert k == first + 2
    expected_k = int(np.round(np.asarray(source.world_to_data(viewer.dims.point))[2]))
    assert k == expected_k
    # its world position along S is the new slice's, and its values are the new slice's (blob falls off)
    np.testing.assert_allclose(np.asarray(sr.data_to_world((0, 0, 0)))[2],
                               np.asarray(source.data_to_world((0, 0, k)))[2], atol=1e-6)
    new_slice = np.asarray(source.data[:, :, k])
    assert abs(float(np.mean(sr.data)) - float(new_slice.mean())) < 0.03 * float(new_slice.mean())
    assert len([layer for layer in viewer.layers if SR_KEY in layer.metadata]) == 1  # updated, not added


def test_a_newer_slice_supersedes_one_still_being_computed(viewer, dock, source, qtbot):
    dock.set_scales(2.0)
    _network_result(qtbot, dock, lambda: dock.live_check.setChecked(True))
    first = dock.layer.metadata[SR_KEY]["index"]
    shown = []
    dock.result_shown.connect(lambda kind: shown.append((kind, dock.layer.metadata[SR_KEY]["index"])))
    start = viewer.dims.point[2]
    viewer.dims.set_point(2, start + 2.0)  # one slice up: starts computing
    viewer.dims.set_point(2, start + 4.0)  # and another before the first is done
    qtbot.waitUntil(lambda: ("network", first + 2) in shown, timeout=60_000)
    qtbot.wait(200)
    assert all(index == first + 2 for _, index in shown), shown  # nothing of slice first + 1 was shown
    assert dock.worker is None and dock._pending is None


def test_unticking_live_drops_the_result_still_being_computed(dock, source, qtbot, monkeypatch):
    """The network step cannot be interrupted; its result, arriving after the user turned live off, is not
    shown (a slow step stands in for sr_full on a large slice)."""
    import time

    from widgets import superres_dock

    real = superres_dock.super_resolve
    monkeypatch.setattr(superres_dock, "super_resolve", lambda *a, **k: (time.sleep(1.0), real(*a, **k))[1])
    kinds = []
    dock.result_shown.connect(kinds.append)
    dock.live_check.setChecked(True)
    qtbot.waitUntil(lambda: "bicubic" in kinds, timeout=30_000)
    dock.live_check.setChecked(False)  # while the network step runs
    qtbot.waitUntil(lambda: dock.worker is None, timeout=30_000)
    qtbot.wait(100)
    assert kinds == ["bicubic"]
    dock.live_check.setChecked(True)  # ticked again: the slice is computed anew and shown
    qtbot.waitUntil(lambda: "network" in kinds, timeout=30_000)


def test_stop_drops_a_refine_still_being_computed(dock, source, qtbot, monkeypatch):
    import time

    from widgets import superres_dock

    real = superres_dock.super_resolve
    monkeypatch.setattr(superres_dock, "super_resolve", lambda *a, **k: (time.sleep(1.0), real(*a, **k))[1])
    kinds = []
    dock.result_shown.connect(kinds.append)
    assert not dock.stop_button.isEnabled()
    dock.refine()
    assert dock.stop_button.isEnabled()
    qtbot.waitUntil(lambda: "bicubic" in kinds, timeout=30_000)
    dock.stop_button.click()  # while sr_full runs
    assert dock.status.text().startswith("Stopped")
    qtbot.waitUntil(lambda: dock.worker is None, timeout=30_000)
    qtbot.wait(100)
    assert kinds == ["bicubic"] and not dock.stop_button.isEnabled()


def test_bad_scale_is_refused_with_a_message(dock, source, qtbot):
    dock.live_check.setChecked(True)
    dock.set_scales(1.0)
    assert "(1, 4]" in dock.status.text()
    dock.set_scales(1.0, 1.0)
    assert "(1, 4]" in dock.status.text()
    # one axis at 1 is allowed (e.g. thick-slice through-plane data)
    _network_result(qtbot, dock, lambda: dock.set_scales(1.0, 3.0))
    assert dock.layer.data.shape == (22, 72, 1)


def test_a_hidden_source_is_not_super_resolved(dock, source, qtbot):
    """Hidden by the user, or by a hyperspectral cube shown instead (app.spaces): the SR layer must not
    come back over the cube."""
    source.visible = False
    dock.live_check.setChecked(True)
    assert "is hidden: show it" in dock.status.text() and dock.layer is None and dock.worker is None


def test_refine_uses_the_full_model(dock, source, qtbot):
    dock.set_scales(2.0)
    _network_result(qtbot, dock, dock.refine)
    assert dock.layer.metadata[SR_KEY]["model"] == REFINE_MODEL
    assert REFINE_MODEL in dock.latency_label.text()


def test_export_slice_writes_the_spacing_and_affine_of_the_layer(viewer, dock, source, qtbot, tmp_path,
                                                                 monkeypatch):
    dock.set_scales(2.0, 1.5)
    _network_result(qtbot, dock, lambda: dock.live_check.setChecked(True))
    target = tmp_path / "slice_sr.nii.gz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    dock.export_slice()
    qtbot.waitUntil(lambda: "Saved" in dock.status.text(), timeout=20_000)
    img = nib.load(target)
    assert img.shape == (44, 36, 1)
    # R 0.9 mm / 2, A 1.2 mm / 1.5, S 2.0 mm (one slice)
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :3], axis=0), [0.45, 0.8, 2.0], rtol=1e-5)
    np.testing.assert_allclose(img.affine, layer_affine(dock.layer), atol=1e-5)


def test_split_and_side_by_side_show_bicubic(viewer, dock, source, qtbot):
    dock.set_scales(2.0)
    _network_result(qtbot, dock, lambda: dock.live_check.setChecked(True))
    network = np.array(dock.layer.data)
    dock.compare_combo.setCurrentIndex(1)  # split
    dock.split_slider.setValue(50)
    split = np.asarray(dock.layer.data)
    half = network.shape[0] // 2  # layer data axes (R, A, S): the screen's horizontal axis R is axis 0
    np.testing.assert_array_equal(split[half:], network[half:])
    assert not np.allclose(split[:half], network[:half])
    dock.compare_combo.setCurrentIndex(2)  # side by side
    side = dock.bicubic_layer
    assert side is not None and side.visible
    np.testing.assert_array_equal(np.asarray(side.data)[:half], split[:half])
    shift = np.asarray(side.data_to_world((0, 0, 0))) - np.asarray(dock.layer.data_to_world((0, 0, 0)))
    assert np.linalg.norm(shift) > 0.45 * network.shape[0]  # beside the slice (0.45 mm pixels), not over it


@pytest.mark.slow
def test_export_volume_runs_main_py_sr_in_the_background(viewer, dock, qtbot, tmp_path, monkeypatch):
    (layer,) = add_layers(viewer, [image_layer(_volume())])
    set_plane(viewer, "axial")
    dock.set_scales(2.0, 1.5)
    target = tmp_path / "volume_sr.nii.gz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    codes = []
    dock.job_done.connect(codes.append)
    dock.export_volume()  # the layer has no file: written to a temporary NIfTI first, then the job starts
    qtbot.waitUntil(lambda: dock.panel.running, timeout=30_000)
    assert dock.panel.cancel_button.isEnabled()
    temporary = dock.panel.job.argv[dock.panel.job.argv.index("sr") + 1]
    qtbot.waitUntil(lambda: bool(codes), timeout=120_000)
    assert not Path(temporary).exists()  # removed when the job ended
    assert codes == [0], dock.panel.status.text()
    img = nib.load(target)
    # the layer's voxel order (R, A, S), written for the job: axial = S sliced, A vertical x1.5, R across x2
    assert img.shape == (44, 36, 14)
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :3], axis=0), [0.45, 0.8, 2.0], rtol=1e-5)
    assert np.linalg.norm(_world_centroid_file(img) - _world_centroid_file(nib.Nifti1Image(
        np.asarray(layer.metadata["volume"].data), AFFINE))) < 0.2


def _world_centroid_file(img) -> np.ndarray:
    return img.affine[:3, :3] @ _centroid(img.get_fdata()) + img.affine[:3, 3]


@pytest.mark.slow
def test_adapt_fine_tunes_in_the_background_and_switches_the_model(viewer, dock, qtbot, tmp_path):
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(_volume((104, 104, 10)).data, AFFINE), scan)
    add_layers(viewer, [image_layer(_volume((104, 104, 10), source=str(scan)))])
    set_plane(viewer, "axial")
    codes = []
    dock.job_done.connect(codes.append)
    dock.adapt_steps.setValue(10)  # the smallest run the dock offers
    dock.adapt()
    argv = dock.panel.job.argv
    assert "sr-train" in argv and "--adapt" in argv and str(scan) in argv
    qtbot.waitUntil(lambda: bool(codes), timeout=180_000)
    assert codes == [0], dock.panel.status.text()
    adapted = dock.model_combo.currentData()
    assert adapted.endswith("sr_light_adapted.safetensors")
    assert "Adapted model in use" in dock.panel.status.text()


@pytest.mark.slow
def test_cancel_stops_the_adapt_job_without_switching_the_model(viewer, dock, qtbot, tmp_path):
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(_volume((104, 104, 10)).data, AFFINE), scan)
    add_layers(viewer, [image_layer(_volume((104, 104, 10), source=str(scan)))])
    before = dock.model_combo.currentData()
    codes, events = [], []
    dock.job_done.connect(codes.append)
    dock.adapt_steps.setValue(20000)
    dock.adapt()
    dock.panel.job.job_event.connect(lambda event: events.append(event["event"]))
    qtbot.waitUntil(lambda: "start" in events, timeout=120_000)
    dock.panel.cancel()
    qtbot.waitUntil(lambda: bool(codes), timeout=60_000)
    assert codes == [0] and "cancelled" in dock.panel.status.text()
    assert dock.model_combo.currentData() == before and not dock.panel.running


def test_nans_in_the_slice_are_reported_in_the_dock(viewer, dock, qtbot):
    volume = _volume()
    volume.data[:, 7, :] = np.nan  # voxel axis 1 is S: one whole axial slice
    add_layers(viewer, [image_layer(volume)])
    set_plane(viewer, "axial")
    viewer.dims.set_point(2, (AFFINE @ np.r_[BLOB[0], 7, BLOB[2], 1])[2])
    dock.set_scales(2.0)
    dock.live_check.setChecked(True)
    qtbot.waitUntil(lambda: "NaN" in dock.status.text(), timeout=30_000)
    assert dock.layer is None  # nothing shown for a slice that could not be computed


def test_only_a_single_file_the_layer_shows_unchanged_is_a_job_source(viewer, tmp_path):
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(_volume().data, AFFINE), scan)
    (from_file,) = add_layers(viewer, [image_layer(_volume(source=str(scan)))])  # non-RAS: reordered view
    assert unchanged_source(from_file) == str(scan)
    (from_folder,) = add_layers(viewer, [image_layer(_volume(source=str(tmp_path)))])  # e.g. a DICOM folder
    assert unchanged_source(from_folder) is None
    from_file.translate = (0.0, 0.0, 5.0)  # moved in the world: no longer the file's geometry
    assert unchanged_source(from_file) is None
    (reshaped,) = add_layers(viewer, [image_layer(_volume(source=str(scan)))])
    reshaped.data = np.asarray(reshaped.data)[:, :, :-1]  # e.g. cropped by another tool
    assert unchanged_source(reshaped) is None
    (filtered,) = add_layers(viewer, [image_layer(_volume(source=str(scan)))])
    assert unchanged_source(filtered) == str(scan)
    with pytest.raises(ValueError, match="read-only"):
        filtered.data[0, 0, 0] = 7.0  # edited in place, it would still pass for its file: refused
    filtered.data = np.asarray(filtered.data) * 2.0  # e.g. a plugin's filter: same shape and placement
    assert unchanged_source(filtered) is None


def test_a_layer_without_its_file_is_written_in_a_worker_before_the_job_starts(viewer, dock, qtbot, tmp_path,
                                                                               monkeypatch):
    (layer,) = add_layers(viewer, [image_layer(_volume(source=str(tmp_path)))])  # the source is a folder
    set_plane(viewer, "axial")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "o.nii.gz"), ""))
    started = []
    monkeypatch.setattr(dock, "start_job", lambda argv, text: started.append(argv))
    dock.export_volume()
    assert not started and dock.source_worker is not None  # the GUI thread only started the write
    assert not dock.export_volume_button.isEnabled()
    qtbot.waitUntil(lambda: bool(started), timeout=30_000)
    argv = started[0]
    source = argv[argv.index("sr") + 1]
    assert source != str(tmp_path) and source.endswith(".nii")
    written = nib.load(source)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(layer.data))
    np.testing.assert_allclose(written.affine, layer_affine(layer), atol=1e-5)
    assert dock.export_volume_button.isEnabled()


def _start(dock, script: str) -> list[int]:
    """Run `script` as the dock's background job; returns the list its exit code is appended to."""
    codes = []
    dock.job_done.connect(codes.append)
    dock.start_job([sys.executable, "-c", script], "Testing")
    return codes


def test_a_failed_job_shows_its_error_event_else_its_last_stderr_line(dock, qtbot):
    error = json.dumps({"event": "error", "message": "scan.nii: the image is constant"})
    codes = _start(dock, f"import sys; print({error!r}); sys.stderr.write('Traceback\\nlong\\n'); "
                                 "sys.exit(2)")
    qtbot.waitUntil(lambda: bool(codes), timeout=30_000)
    assert dock.panel.status.text() == "Failed (exit 2): scan.nii: the image is constant"
    codes = _start(dock, "import sys; sys.stderr.write('first\\nlast line\\n  \\n'); sys.exit(1)")
    qtbot.waitUntil(lambda: bool(codes), timeout=30_000)
    assert dock.panel.status.text() == "Failed (exit 1): last line"
    codes = _start(dock, "import sys; sys.stderr.write(' \\n\\t\\n'); sys.exit(1)")  # whitespace only
    qtbot.waitUntil(lambda: bool(codes), timeout=30_000)
    assert dock.panel.status.text() == "Failed (exit 1): no message"


def test_a_cancelled_job_says_cancelled_whatever_its_exit_code(dock, qtbot):
    codes = _start(dock, "import time; print('ready', flush=True); time.sleep(60)")  # dies on SIGTERM
    qtbot.waitUntil(lambda: dock.panel.running, timeout=10_000)
    dock.panel.cancel()
    qtbot.waitUntil(lambda: bool(codes), timeout=30_000)
    assert codes[0] != 0 and dock.panel.status.text() == "Testing: cancelled"
