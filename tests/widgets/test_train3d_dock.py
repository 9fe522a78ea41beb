"""The Train 3D (partitioned) dock: input checks, a real 2-rank run with an aligned prediction, cancel."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels
from qtpy.QtCore import QTimer

from app import settings
from app.layers import image_layer, labels_layer, layer_affine
from app.viewer import add_layers, make_layers
from engines.errors import InputError
from engines.io import read_volume, write_volume
from engines.volume import Volume
from widgets.train3d_dock import (
    Train3DDock,
    VolumeInput,
    job_problem,
    read_prediction,
    volume_input,
    write_inputs,
)
from widgets.view_dock import LayerChoice

pytestmark = pytest.mark.qt

SHAPE = (32, 32, 32)
# 1.5 x 1.5 x 2 mm voxels away from the origin: a prediction placed by the wrong affine would not overlay.
AFFINE = np.array([[1.5, 0, 0, -20.0], [0, 1.5, 0, 10.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A bright sphere with a darker core on a noisy background; labels 1 = shell, 2 = core."""
    rng = np.random.default_rng(0)
    r = np.sqrt(sum((g - 15.5) ** 2 for g in np.indices(SHAPE)))
    labels = np.where(r < 6, 2, np.where(r < 11, 1, 0)).astype(np.uint8)
    image = np.choose(labels, [0.0, 100.0, 60.0]) + rng.normal(0, 5, SHAPE)
    return image.astype(np.float32), labels


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _add(viewer, image: np.ndarray | None = None, labels: np.ndarray | None = None,
         labels_affine: np.ndarray = AFFINE) -> list:
    scene_image, scene_labels = _scene()
    image = scene_image if image is None else image
    labels = scene_labels if labels is None else labels
    names = {"label_names": ["background", "shell", "core"]}
    tuples = [image_layer(Volume(image, AFFINE), name="sphere"),
              labels_layer(Volume(labels, labels_affine, meta=names), name="sphere labels")]
    return add_layers(viewer, make_layers(tuples))


@pytest.fixture
def dock(viewer, qtbot):
    dock = Train3DDock(viewer)
    viewer.window.add_dock_widget(dock, name="Train 3D (partitioned)")
    yield dock
    if dock.panel.running:  # never leave ranks behind
        dock.panel.job.cancel()
        dock.panel.job.wait(30_000)


def _settings(dock, out: Path, *, steps: int, crop: str = "full") -> None:
    dock.out_edit.setText(str(out / "run"))
    dock.model_combo.setCurrentText("basicunet")
    dock.width_spin.setValue(2)
    dock.mesh_combo.setCurrentText("2x1x1")
    dock.backend_combo.setCurrentText("gloo")
    dock.steps_spin.setValue(steps)
    dock.lr_spin.setValue(0.01)
    dock.crop_edit.setText(crop)


def _problem_after_start(dock, qtbot) -> str:
    dock.last_message = ""
    dock.start()
    qtbot.waitUntil(lambda: bool(dock.last_message), timeout=60_000)
    assert not dock.panel.running and dock.result is None
    assert "ranks (torchrun)" not in dock.panel.log_view.toPlainText()  # refused before any rank started
    return dock.last_message


def test_the_dock_does_not_import_torch() -> None:
    # importing torch holds the GIL ~0.5 s: the GUI process must not pay that (the ranks do)
    code = "import sys, widgets.train3d_dock; print('torch' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False", "False"]


def test_job_messages_name_layers_and_form_fields() -> None:
    written = {"/tmp/run/inputs/labels.nii": "layer 'tissue'"}
    problem = job_problem("tessera: /tmp/run/inputs/labels.nii: labels must be 0 or more; found -1", written)
    assert (problem.path, problem.problem) == ("layer 'tissue'", "labels must be 0 or more; found -1")
    problem = job_problem("tessera: /runs/a: this folder already holds a checkpoint: pass --resume to "
                          "continue it, or choose another --out", written)
    assert problem.path is None and problem.problem.endswith("pass Resume to continue it, or choose another "
                                                             "Output folder")


def test_files_open_into_the_choices_and_an_unmodified_image_file_is_used_as_is(tmp_path: Path, dock, viewer,
                                                                                 qtbot) -> None:
    image, labels = _scene()
    write_volume(Volume(image, AFFINE), tmp_path / "image.nii")
    write_volume(Volume(labels, AFFINE), tmp_path / "labels.nii")
    for name, choice in (("image", dock.image_choice), ("labels", dock.labels_choice)):
        dock.open_file(str(tmp_path / f"{name}.nii"), as_labels=name == "labels")
        qtbot.waitUntil(lambda choice=choice, name=name: getattr(choice.layer(), "name", None) == name,
                        timeout=30_000)
    image_layer_, labels_layer_ = dock.image_choice.layer(), dock.labels_choice.layer()
    assert isinstance(labels_layer_, Labels) and len(viewer.layers) == 2
    assert volume_input(image_layer_).path == str(tmp_path / "image.nii")
    written = volume_input(labels_layer_)  # labels may have been painted: always written from the layer
    assert written.path is None and written.data is labels_layer_.data
    np.testing.assert_allclose(written.affine, AFFINE)


def test_a_choice_that_does_not_follow_the_selection_needs_a_text_for_none(viewer) -> None:
    with pytest.raises(ValueError, match="needs a none_text"):
        LayerChoice(viewer, Labels, follow_selection=False)


def test_a_layer_selected_in_the_list_does_not_become_an_input(dock, viewer) -> None:
    """A prediction (napari selects what it adds, on top) or any layer clicked to look at stays out of the
    choices until picked there: Start must not train on the last run's prediction."""
    image, labels = _add(viewer)
    dock.image_choice.set_layer(image)
    dock.labels_choice.set_layer(labels)
    other_image = viewer.add_image(np.zeros(SHAPE, np.float32), name="other")
    prediction = viewer.add_labels(np.zeros(SHAPE, np.uint8), name="sphere prediction")
    viewer.layers.selection.active = other_image
    viewer.layers.selection.active = prediction
    assert dock.image_choice.layer() is image and dock.labels_choice.layer() is labels
    viewer.layers.remove(labels)  # nor does the layer on top take the place of a removed one
    assert dock.labels_choice.layer() is None and dock.labels_choice.currentText() == "(pick a layer)"
    corrected = viewer.add_labels(np.zeros(SHAPE, np.uint8), name="corrected labels")
    assert dock.labels_choice.layer() is corrected  # labels arriving then are taken
    dock.labels_choice.set_layer(prediction)  # and anything picked here
    assert dock.labels_choice.layer() is prediction


def test_an_image_file_stored_in_another_order_is_written_in_the_layers_order(tmp_path: Path, dock,
                                                                                qtbot) -> None:
    """An LPS file shows as a flipped view: the job must get the image in the order the labels are written
    (the layer's), and the layout check the shape it will read."""
    image, _ = _scene()
    lps = np.diag([-1.5, -1.5, 2.0, 1.0])
    lps[:3, 3] = [20.0, 30.0, 5.0]
    write_volume(Volume(image[:, :, :16], lps), tmp_path / "lps.nii")
    dock.open_file(str(tmp_path / "lps.nii"), as_labels=False)
    qtbot.waitUntil(lambda: getattr(dock.image_choice.layer(), "name", None) == "lps", timeout=30_000)
    layer = dock.image_choice.layer()
    given = volume_input(layer)
    assert given.path is None and given.data is layer.data  # written out, like the labels
    ras = np.array([[1.5, 0, 0, 20 - 1.5 * 31], [0, 1.5, 0, 30 - 1.5 * 31], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(given.affine, ras)  # flipped along the first two axes: R, A, S


def test_layers_off_the_image_grid_are_named_at_once(dock, viewer, qtbot, tmp_path: Path) -> None:
    _settings(dock, tmp_path, steps=2)
    assert "choose an image layer and a labels layer" in _problem_after_start(dock, qtbot)

    _add(viewer, labels=np.zeros((32, 32, 16), np.uint8))
    assert _problem_after_start(dock, qtbot) == (
        "Could not train on layer 'sphere labels': labels are (32, 32, 16) voxels, image 'sphere' is "
        "(32, 32, 32): they must share a voxel grid")
    viewer.layers.clear()
    shifted = AFFINE.copy()
    shifted[0, 3] += 3.0
    _add(viewer, labels_affine=shifted)
    assert "different affines" in _problem_after_start(dock, qtbot)
    viewer.layers.clear()
    rgb = viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="photo")  # napari takes it for RGB
    viewer.add_labels(np.zeros((32, 32, 3), np.uint8), name="photo labels")
    dock.image_choice.set_layer(rgb)
    assert _problem_after_start(dock, qtbot) == ("Could not train on layer 'photo': an RGB colour image: "
                                                 "training needs a 3D greyscale volume")
    viewer.layers.clear()
    _add(viewer)
    dock.out_edit.clear()
    dock.resume_box.setChecked(True)
    assert "nothing to resume" in _problem_after_start(dock, qtbot)


@pytest.mark.slow
def test_what_the_job_refuses_is_named_before_any_rank_starts(dock, viewer, qtbot, tmp_path: Path) -> None:
    _settings(dock, tmp_path, steps=2)
    _add(viewer, labels=np.zeros(SHAPE, np.uint8))
    write_volume(Volume(_scene()[0], AFFINE), tmp_path / "other.nii")
    dock.last_message = ""
    dock.start()
    first = dock.worker
    dock.start()  # a second Start while the first's inputs are written does nothing
    assert dock.worker is first
    dock.open_file(str(tmp_path / "other.nii"), as_labels=False)  # File… meanwhile: the Start goes on
    qtbot.waitUntil(lambda: bool(dock.last_message), timeout=60_000)
    message = dock.last_message  # the first's refusal, not a race for the folder with the second
    assert "layer 'sphere labels'" in message and "single class" in message

    viewer.layers.clear()
    _add(viewer)
    dock.ranks_spin.setValue(3)
    assert "Ranks 3, but mesh 2x1x1 has 2 blocks" in _problem_after_start(dock, qtbot)
    dock.mesh_combo.setCurrentText("2x2x1")
    assert dock.ranks_spin.value() == 4  # the rank count follows the mesh
    dock.mesh_combo.setCurrentText("2x1x1")
    dock.resume_box.setChecked(True)  # a fresh folder has no checkpoint
    dock.out_edit.setText(str(tmp_path))
    assert str(tmp_path) in _problem_after_start(dock, qtbot)


@pytest.mark.parametrize(("mesh", "crop", "fragments"), [
    ("2x1x1", "64,64,64", ["Crop 64,64,64: 64 along D exceeds the volume's 32"]),
    ("4x1x1", "full", ["mesh 4x1x1: the volume's 32 voxels along D fill 2 of its 4 blocks", "at most 2"]),
])
def test_a_crop_or_mesh_the_volume_cannot_take_is_named_before_anything_is_written(
        dock, viewer, qtbot, tmp_path: Path, mesh: str, crop: str, fragments: list[str]) -> None:
    _settings(dock, tmp_path, steps=2, crop=crop)
    dock.mesh_combo.setCurrentText(mesh)
    _add(viewer)
    message = _problem_after_start(dock, qtbot)
    assert all(fragment in message for fragment in fragments), message
    assert not (tmp_path / "run" / "inputs").exists()  # the layers were not even written


def test_a_folder_another_job_is_using_is_named_and_its_inputs_are_not_touched(
        dock, viewer, qtbot, tmp_path: Path) -> None:
    from engines.partition.job_lock import job_folder

    _settings(dock, tmp_path, steps=2)
    _add(viewer)
    inputs = tmp_path / "run" / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "image.nii").write_bytes(b"the running job's image")
    with job_folder(tmp_path / "run"):  # a job running there (here: this process, as another job would)
        message = _problem_after_start(dock, qtbot)
    assert "another training job" in message and "Output folder" in message and "--out" not in message
    assert (inputs / "image.nii").read_bytes() == b"the running job's image"


def _ticks() -> tuple[QTimer, list[tuple[float, float]]]:
    """A 20 ms timer recording (wall time, GUI-thread CPU time) each time it fires.

    What the earlier tests of a whole-suite run left is collected first: a full collection of it, in the
    GUI thread, is not this dock's work (1.0-1.4 s each late in a run of tests/app and tests/widgets).
    """
    gc.collect()
    ticks = [(time.monotonic(), time.thread_time())]
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append((time.monotonic(), time.thread_time())))
    timer.start(20)
    return timer, ticks


def _assert_responsive(ticks: list[tuple[float, float]]) -> None:
    """No gap between ticks spent computing in the GUI thread for more than 0.25 s.

    CPU time, not wall time: on a busy 2-core CI machine the GUI thread also waits for a core, which is
    not this code blocking it. Wall-time gaps are printed for the record.
    """
    wall, cpu = (np.diff(column) for column in np.asarray(ticks).T)
    slow = [f"{ticks[i][0] - ticks[0][0]:.1f}s:{g:.2f}/{cpu[i]:.2f}" for i, g in enumerate(wall) if g > 0.1]
    print(f"timer gaps: wall max {wall.max():.3f} s, GUI-thread CPU max {cpu.max():.3f} s; "
          f"wall > 0.1 s (at: wall/CPU): {', '.join(slow)}")
    assert cpu.max() < 0.25, f"the GUI thread computed for {cpu.max():.2f} s without a break"


@pytest.mark.parametrize(("values", "curves"), [
    ([0, 2, 5], {"class 2": 0.25, "class 5": 0.5}),
    ([1, 4, 7], {"class 1": 0.125, "class 4": 0.25, "class 7": 0.5}),
])
def test_dice_curves_follow_the_label_values_and_leave_out_only_background(dock, values, curves) -> None:
    """The job's classes stand for label values (0, 2, 5, or 1, 4, 7 with no background): one Dice curve
    per value but 0, each fed its own class's Dice."""
    dock.panel.job_event.emit({"event": "start", "ranks": 1, "mesh": "1x1x1", "backend": "gloo",
                               "device": "cpu", "model": "unet", "crop": [8, 8, 8], "first_step": 1,
                               "classes": 3, "values": values})
    dock.panel.job_event.emit({"event": "metric", "step": 1, "loss": 1.0, "dice": [0.125, 0.25, 0.5],
                               "peak_mem_mb": [10.0], "step_time_s": 0.1})
    names = [name for (panel, name) in dock.plot._data if panel == "Dice"]
    plotted = {name: dock.plot.series("Dice", name)[1] for name in names}
    assert plotted == {name: [value] for name, value in curves.items()}


@pytest.mark.dist
@pytest.mark.slow
def test_a_short_run_adds_a_prediction_aligned_with_the_image(dock, viewer, qtbot, tmp_path: Path) -> None:
    image, labels = _add(viewer)
    _settings(dock, tmp_path, steps=4)
    timer, ticks = _ticks()
    started = time.monotonic()
    dock.start()
    assert time.monotonic() - started < 0.1  # the checks and the job run elsewhere
    qtbot.waitUntil(lambda: dock.prediction_layer is not None, timeout=120_000)
    timer.stop()
    prediction = dock.prediction_layer
    assert prediction.name == "sphere prediction" and prediction.data.shape == SHAPE
    np.testing.assert_allclose(layer_affine(prediction), layer_affine(image), atol=1e-6)
    assert set(np.unique(prediction.data)) <= {0, 1, 2}
    steps, losses = dock.plot.series("loss", "Dice + CE")
    assert steps == [1.0, 2.0, 3.0, 4.0] and all(np.isfinite(losses))
    assert {name for (panel, name) in dock.plot._data if panel == "Dice"} <= {"shell", "core"}
    assert "Peak memory per rank: 0:" in dock.memory.text() and ", 1:" in dock.memory.text()
    assert dock.result["stopped"] is False and "prediction added" in dock.panel.status.text()
    assert viewer.layers.selection.active is prediction and dock.labels_choice.layer() is labels
    viewer.layers.remove(labels)
    assert dock.labels_choice.layer() is None  # not the prediction, on top
    _assert_responsive(ticks)


@pytest.mark.dist
@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_the_gui_responsive(dock, viewer, qtbot, tmp_path: Path) -> None:
    _add(viewer)
    _settings(dock, tmp_path, steps=100_000)
    timer, ticks = _ticks()
    dock.start()
    qtbot.waitUntil(lambda: len(dock.plot.series("loss", "Dice + CE")[0]) >= 2, timeout=90_000)
    with qtbot.waitSignal(dock.panel.finished, timeout=60_000):
        dock.cancel()
        assert "Cancelling" in dock.panel.status.text()
    timer.stop()
    assert dock.result is not None and dock.result["stopped"] is True
    state = json.loads((Path(dock.out) / "checkpoint" / "checkpoint.json").read_text())
    assert state["step"] == dock.result["step"] >= 2
    assert dock.resume_box.isChecked()
    assert dock.prediction_layer is None and f"Stopped at step {state['step']}" in dock.panel.status.text()
    out = dock.out
    dock.start()  # Resume is ticked: the same folder, --resume
    qtbot.waitUntil(lambda: dock.panel.running, timeout=30_000)
    argv = dock.panel.job.argv
    assert "--resume" in argv and argv[argv.index("--out") + 1] == out
    with qtbot.waitSignal(dock.panel.finished, timeout=30_000):
        dock.cancel()  # while the job is still starting
    assert dock.panel.status.text().startswith("Stopped. The checkpoint in")  # the one resumed, kept
    assert f"is at step {state['step']};" in dock.panel.status.text()
    assert json.loads((Path(out) / "checkpoint" / "checkpoint.json").read_text())["step"] == state["step"]
    _assert_responsive(ticks)


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "taken").write_text("a file where the folder should be")
    item = VolumeInput("img", np.eye(4), data=np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InputError, match="cannot create the job's folder") as info:
        write_inputs(item, item, tmp_path / "taken" / "run")
    assert info.value.path == str(tmp_path / "taken" / "run")


def test_each_start_writes_its_inputs_into_its_own_folder_and_clears_earlier_ones(tmp_path):
    """A start's inputs cannot be changed by a later start before its train-seg takes the folder: the later
    one removes them (that train-seg then finds them missing and says so) rather than rewriting them."""
    out = tmp_path / "run"
    image = VolumeInput("img", np.eye(4), data=np.ones((4, 4, 4), np.float32))
    labels = VolumeInput("lab", np.eye(4), data=np.zeros((4, 4, 4), np.uint8))
    (first_image, first_labels), written = write_inputs(image, labels, out)
    assert Path(first_image).parent == Path(first_labels).parent
    assert Path(first_image).parent.parent == out / "inputs"
    assert written == {first_image: "layer 'img'", first_labels: "layer 'lab'"}
    kept = VolumeInput("img", np.eye(4), path=first_image)  # an earlier start's input opened as a file
    (second_image, second_labels), _ = write_inputs(kept, labels, out)
    assert second_image == first_image and Path(second_image).exists()
    assert Path(second_labels).parent != Path(first_labels).parent
    (third_image, third_labels), _ = write_inputs(image, labels, out)
    assert not Path(first_image).exists() and not Path(second_labels).exists()  # earlier starts' copies go
    assert sorted(p.name for p in (out / "inputs").iterdir()) == [Path(third_image).parent.name]
    np.testing.assert_array_equal(np.asarray(read_volume(third_labels).data), 0)


def _refuse(path):
    raise PermissionError(13, "Permission denied", str(path))


def test_a_start_removes_only_the_folders_earlier_starts_wrote(tmp_path, monkeypatch):
    """An Output folder may be a project folder with its own inputs/: only what a Start wrote goes."""
    out = tmp_path / "project"
    inputs = out / "inputs"
    (inputs / "case2").mkdir(parents=True)
    (inputs / "start-mine").mkdir()  # named like a start's, but holding the user's notes
    for name in ("case1_seg.nii.gz", "notes.txt", "scan.mhd", "scan.raw", "case2/t1.nii", "start-mine/notes"):
        (inputs / name).write_text(name)
    image = VolumeInput("img", np.eye(4), data=np.ones((4, 4, 4), np.float32))
    labels = VolumeInput("lab", np.eye(4), data=np.zeros((4, 4, 4), np.uint8))
    old_umask = os.umask(0o002)  # a group-shared folder
    try:
        (first, _), _ = write_inputs(image, labels, out)
        monkeypatch.setattr(shutil, "rmtree", _refuse)
        (second, _), _ = write_inputs(image, labels, out)  # a teammate's earlier start it cannot remove
        assert Path(first).exists() and Path(second).exists()
        monkeypatch.undo()
        (third, _), _ = write_inputs(image, labels, out)
    finally:
        os.umask(old_umask)
    assert not Path(first).exists() and not Path(second).exists() and Path(third).exists()
    assert Path(third).parent.stat().st_mode & 0o777 == 0o775  # others in the group can remove it
    for name in ("case1_seg.nii.gz", "notes.txt", "scan.mhd", "scan.raw", "case2/t1.nii", "start-mine/notes"):
        assert (inputs / name).read_text() == name


def test_a_layer_copy_removed_by_another_start_is_named_as_such() -> None:
    problem = job_problem("tessera: /o/inputs/start-1/image.nii: no such file or folder",
                          {"/o/inputs/start-1/image.nii": "layer 'T1'"})
    assert problem.path == "layer 'T1'" and "another Start into the same Output folder" in problem.problem


def test_an_earlier_start_that_cannot_be_listed_stays_and_the_start_goes_on(tmp_path, monkeypatch):
    """A teammate's folder from a version that made it private (0700): no Start refused for good."""
    locked = tmp_path / "run" / "inputs" / "start-locked"
    locked.mkdir(parents=True)
    (locked / "image.nii").write_text("theirs")
    real_iterdir = Path.iterdir

    def private(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", private)
    item = VolumeInput("img", np.eye(4), data=np.ones((4, 4, 4), np.float32))
    (image, _), _ = write_inputs(item, item, tmp_path / "run")
    assert Path(image).exists() and (locked / "image.nii").read_text() == "theirs"


def test_a_prediction_lands_on_the_image_layers_own_voxel_grid(viewer, tmp_path: Path) -> None:
    """Written on the layer's grid (a layer napari rotates, or one without its file), the prediction comes
    back on that grid as it is, not resampled; made on the image file's grid, it is placed as the file is."""
    _, labels = _scene()
    rotated = viewer.add_image(np.zeros(SHAPE, np.float32), scale=(1.5, 1.5, 2.0), translate=(5.0, -3.0, 2.0),
                               rotate=np.degrees(0.5))
    grid = (SHAPE, layer_affine(rotated))
    colormap = Labels(labels).colormap
    write_volume(Volume(labels, grid[1]), tmp_path / "rotated.nii.gz")
    (layer,) = read_prediction(str(tmp_path / "rotated.nii.gz"), "p", colormap, grid)
    assert layer.data.shape == SHAPE
    np.testing.assert_array_equal(layer.data, labels)
    np.testing.assert_allclose(layer_affine(layer), grid[1], atol=1e-4)

    lps = np.diag([-1.5, -1.5, 2.0, 1.0])  # a file in LPS order, shown as a flipped view of its voxels
    write_volume(Volume(labels, lps), tmp_path / "lps.nii.gz")
    (image,) = make_layers([image_layer(Volume(labels.astype(np.float32), lps))])
    (layer,) = read_prediction(str(tmp_path / "lps.nii.gz"), "p", colormap,
                               (image.data.shape, layer_affine(image)))
    np.testing.assert_allclose(layer_affine(layer), layer_affine(image), atol=1e-4)
    np.testing.assert_array_equal(layer.data, image.data)


def _start_event() -> dict:
    return {"event": "start", "values": [0, 1, 2], "crop": [32, 32, 32], "ranks": 2, "mesh": "2x1x1",
            "backend": "gloo", "device": "cpu", "model": "basicunet", "first_step": 1}


def test_a_job_ended_before_its_result_names_the_checkpoint_it_kept(dock, tmp_path: Path) -> None:
    """A Cancel that ends in the kill (a step longer than the wait), or a rank that dies: the job saved its
    last finished step when asked to stop, or at its interval; the dock says which, and Resume continues."""
    from torch import nn

    from engines.partition.checkpoint import save_checkpoint

    dock.out = str(tmp_path)
    dock.panel.cancelled = True  # as after Cancel, when no "done" event came
    dock.panel.finished.emit(-1, "")
    assert dock.panel.status.text() == "Cancelled before the first step: nothing to keep."
    assert not dock.resume_box.isChecked()
    save_checkpoint(tmp_path, nn.Linear(2, 2), None, 7, {"model": "basicunet"})
    dock.panel.finished.emit(-1, "")
    assert dock.panel.status.text() == (f"Stopped. The checkpoint in {tmp_path / 'checkpoint'} is at step 7; "
                                        "Start continues it while 'Resume' is ticked.")
    assert dock.resume_box.isChecked()

    dock.resume_box.setChecked(False)
    dock.panel.cancelled = False
    dock.panel.job_event.emit(_start_event())
    dock.panel.job_event.emit({"event": "error", "message": "rank 1 died (SIGKILL)"})
    dock.panel.finished.emit(1, "")
    assert dock.last_message == "rank 1 died (SIGKILL)"
    assert dock.panel.status.text().endswith("is at step 7; Start continues it while 'Resume' is ticked.")
    assert dock.resume_box.isChecked()


def test_the_form_comes_back_as_it_was_last_started(dock, viewer, qtbot, tmp_path: Path) -> None:
    """Network, split and training settings are kept (app.settings); the layers and output folder are not."""
    _add(viewer)
    _settings(dock, tmp_path, steps=17, crop="32,32,16")
    dock.model_combo.setCurrentText("unet")
    dock.mesh_combo.setCurrentText("2x2x1")
    dock.ranks_spin.setValue(3)  # as typed, even if the job will refuse it
    dock.start()
    qtbot.waitUntil(lambda: not dock._preparing, timeout=60_000)
    if dock.panel.running:
        dock.cancel()
        qtbot.waitUntil(lambda: not dock.panel.running, timeout=60_000)
    again = Train3DDock(viewer)
    assert again.form() == {"model": "unet", "width": 2, "mesh": "2x2x1", "ranks": 3, "backend": "gloo",
                            "steps": 17, "lr": 0.01, "crop": "32,32,16"}
    assert again.out_edit.text() == ""  # a new temporary folder per run, as the form says
    for stored in ({"model": "resnet", "steps": "many", "ranks": True, "lr": 5.0, "width": -5},
                   {"steps": 10**12, "lr": float("nan"), "width": 1.5}):  # a hand-edited or other version's
        settings.save_form("Train 3D (partitioned)", stored)
        fresh = Train3DDock(viewer)  # each value the form cannot show is left at its default
        assert fresh.form() == {"model": "basicunet", "width": 8, "mesh": "2x1x1", "ranks": 2,
                                "backend": "auto", "steps": 200, "lr": 0.001, "crop": "64,64,64"}


def test_a_prediction_read_after_the_next_start_is_still_added_and_leaves_the_new_status(dock, viewer):
    """Reading a large prediction takes seconds, and Start is open meanwhile: the finished run's result
    comes in all the same, and says so without taking the new run's status line."""
    prediction = Volume(np.zeros(SHAPE, np.uint8), AFFINE)
    (layer,) = make_layers([labels_layer(prediction, name="sphere prediction")])
    worker = object()
    dock._prediction_worker = worker
    dock._preparing, dock.result = True, None  # a new Start is writing its inputs
    dock.panel.status.setText("Preparing the inputs…")
    dock._add_prediction(worker, [layer], 5)
    assert layer in viewer.layers and dock.prediction_layer is layer
    assert dock.panel.status.text() == "Preparing the inputs…"
