"""The "Train 3D (partitioned)" dock: train a MONAI 3D segmentation network split over ranks.

Pick an image and a labels layer (or open files into them), the network, the mesh of blocks, ranks, backend,
steps, learning rate and crop. Start checks that the layers share a voxel grid, writes layers that are not
unmodified files to NIfTI with their world affine (worker thread), then runs `main.py train-seg` as a
background process (`app.jobs`). That process checks everything else with the job's own planning
(`plan_training`: label values, ranks vs mesh, crop vs the model's downsampling, backend) before it starts
any rank; a refusal comes back as a notification naming the layer. (The check runs there, so this dock never
needs torch: importing it in a thread would hold the GIL ~0.5 s, and in plain napari the dock stays light.
The workbench loads torch once at start-up for the Super-resolution dock.) While it trains: a live
loss / Dice plot, progress with ETA, peak memory per rank and the log. Cancel makes the job checkpoint and
exit; "Resume" continues that checkpoint. When the job is done its OUT/prediction.nii.gz is added as a
labels layer on the image's grid.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels, Layer
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.dock_layout import dock_layout
from app.job_panel import JobPanel
from app.jobs import main_command
from app.layers import (
    GRID_TOLERANCE_MM,
    full_resolution,
    labels_layer,
    layer_affine,
    layer_volume,
    unchanged_source,
)
from app.notify import notify_failure, notify_info
from app.plot import MetricPlot
from app.settings import form_values, save_form
from app.spaces import add_quietly
from app.status_label import StatusLabel
from app.viewer import make_layers, open_paths, unproxied
from engines.errors import InputError
from engines.io import read_volume, write_volume
from engines.partition.checkpoint_files import checkpoint_dir, is_whole, saved_step
from engines.partition.job_lock import job_folder
from engines.partition.layout import check_layout
from engines.partition.models import MODELS
from engines.volume import Volume
from widgets.open_dock import FILE_FILTER
from widgets.view_dock import LayerChoice, label_names

BACKEND_CHOICES = ("auto", "gloo", "nccl")
MESH_CHOICES = ("2x1x1", "1x1x1", "2x2x1", "4x1x1", "2x2x2")
NO_MEMORY = "Peak memory per rank: –"
START_PREFIX = "start-"  # the folders of OUT/inputs/ a Start writes its layers to
PICK = "(pick a layer)"  # an input choice without a layer (its layer was removed)
FORM_NAME = "Train 3D (partitioned)"  # under which app.settings keeps the form as last started
# train-seg's options as this form names them, for the job's messages.
FORM_NAMES = {"--checkpoint-every": "checkpoint interval", "--backend": "Backend", "--resume": "Resume",
              "--ranks": "Ranks", "--steps": "Steps", "--width": "Width", "--crop": "Crop", "--mesh": "Mesh",
              "--out": "Output folder", "--lr": "Learning rate"}


@dataclass
class VolumeInput:
    """What the job reads for one layer: the layer's own unmodified file, or its data to write to NIfTI."""

    name: str
    affine: np.ndarray  # data index -> world mm (the layer's)
    path: str | None = None
    data: Any = None


def volume_input(layer: Layer) -> VolumeInput:
    """The file an image layer shows unchanged and in its own voxel order, else the layer's data.

    Labels layers are always written out, in the layer's order: they may have been painted since they were
    read. So an image file stored in another order (LPS, or axes not R, A, S) than its layer shows is
    written out too, or train-seg would get the two on different grids (and check other axes).
    """
    affine = layer_affine(layer)
    volume = layer_volume(layer)
    if (isinstance(layer, Image) and (path := unchanged_source(layer)) is not None and volume is not None
            and np.allclose(volume.affine, affine, atol=GRID_TOLERANCE_MM)):
        return VolumeInput(layer.name, affine, path=path)
    return VolumeInput(layer.name, affine, data=full_resolution(layer))


def check_grids(image: VolumeInput, labels: VolumeInput, image_shape: tuple[int, ...],
                labels_shape: tuple[int, ...]) -> None:
    """InputError naming the labels layer when it is off the image layer's voxel grid (reads no data)."""
    where = f"layer '{labels.name}'"
    if len(image_shape) != 3:
        raise InputError(f"a 3D image is needed; layer '{image.name}' is {tuple(image_shape)}")
    if tuple(labels_shape) != tuple(image_shape):
        raise InputError(f"labels are {tuple(labels_shape)} voxels, image '{image.name}' is "
                         f"{tuple(image_shape)}: they must share a voxel grid", where)
    if not np.allclose(labels.affine, image.affine, atol=GRID_TOLERANCE_MM):
        raise InputError(f"labels and image '{image.name}' sit differently in the world (different affines): "
                         "they must share a voxel grid", where)


def write_inputs(image: VolumeInput, labels: VolumeInput, out: str | os.PathLike
                 ) -> tuple[list[str], dict[str, str]]:
    """Write the inputs that are not files as NIfTI with their affines (a worker thread's job) into a new
    folder of OUT/inputs/ for this start, holding the job's folder meanwhile (engines.partition.job_lock).

    A folder of its own: between this and train-seg taking the folder, another start or job could take
    it; it then finds no inputs of this start to change, and this start's train-seg is refused. Earlier
    starts' folders go (no job runs here while the folder is held), but not one holding a file input.

    Returns the image and labels paths for train-seg, and {written path: "layer 'NAME'"} to name the
    layers in the job's messages.
    """
    try:
        with job_folder(out):
            return _write_start(Path(out) / "inputs", image, labels)
    except InputError as exc:  # the form's field, not train-seg's option
        raise InputError(job_problem(exc.problem, {}).problem, exc.path) from None


def _write_start(inputs: Path, image: VolumeInput, labels: VolumeInput) -> tuple[list[str], dict[str, str]]:
    """`write_inputs` once the job's folder is held: earlier starts' folders removed (`_earlier_starts`),
    this one's layers written into a new one."""
    written: dict[str, str] = {}
    paths = []
    try:
        inputs.mkdir(parents=True, exist_ok=True)
        for earlier in _earlier_starts(inputs, [item.path for item in (image, labels) if item.path]):
            with contextlib.suppress(OSError):  # a teammate's, in a shared folder: it stays
                shutil.rmtree(earlier)
        folder = None
        for role, item in (("image", image), ("labels", labels)):
            path = item.path
            if path is None:
                if folder is None:  # made by mkdir, so the umask applies (mkdtemp's would be 0700)
                    folder = inputs / f"{START_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
                    folder.mkdir()
                path = str(folder / f"{role}.nii")
                write_volume(Volume(np.asarray(item.data), item.affine), path)
                written[path] = f"layer '{item.name}'"
            paths.append(path)
    except OSError as exc:  # read-only, a file in the way, no permission
        raise InputError(f"the Output folder cannot be written to ({exc.strerror or exc})", inputs) from exc
    return paths, written


def _earlier_starts(inputs: Path, files: list[str]) -> list[Path]:
    """The folders of `inputs` an earlier start wrote (named START_PREFIX..., holding nothing but the
    layers it wrote), except one holding a file this start reads. Anything else there is the user's."""
    kept = [Path(path).resolve() for path in files]
    return [folder for folder in inputs.iterdir()
            if folder.name.startswith(START_PREFIX) and folder.is_dir() and not folder.is_symlink()
            and _holds_only_layers(folder) and not any(folder.resolve() in path.parents for path in kept)]


def _holds_only_layers(folder: Path) -> bool:
    """Whether `folder` holds nothing but what a start writes (False where it cannot be listed)."""
    try:
        return {entry.name for entry in folder.iterdir()} <= {"image.nii", "labels.nii"}
    except OSError:
        return False


def check_and_write(image: VolumeInput, labels: VolumeInput, out: str | os.PathLike,
                    shape: tuple[int, ...], layout: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The form's mesh and crop checked against the volume (`check_layout`: model, mesh, crop),
    then `write_inputs`: a worker thread's job, so that a crop or mesh the volume cannot take is named at
    once, before anything is written or started."""
    try:
        check_layout(shape, **layout)
    except InputError as exc:
        raise job_problem(exc.problem, {}) from None
    return write_inputs(image, labels, out)


def job_problem(message: str, written: dict[str, str]) -> InputError:
    """The job's error message as an InputError naming the layer instead of the file written for it, and
    the form's fields instead of train-seg's options."""
    message = message.removeprefix("tessera: ")
    for option, field in FORM_NAMES.items():
        message = re.sub(rf"{option}\b", field, message)
    for path, layer in written.items():
        if message.startswith(path + ": no such file"):  # removed by a later start (`_earlier_starts`)
            return InputError("its copy for this job was removed before the job started: another Start into "
                              "the same Output folder came in between; start again", layer)
        if message.startswith(path + ": "):
            return InputError(message[len(path) + 2:], layer)
        message = message.replace(path, layer)
    return InputError(message)


def read_prediction(path: str, name: str, colormap: Any, grid: tuple[tuple[int, ...], np.ndarray]
                    ) -> list[Layer]:
    """The job's prediction as a labels layer coloured like the labels, on the image layer's voxel grid
    `grid` (shape, affine): as stored when the job was given that grid (the layer's data written out),
    else placed like a layer of the image's file (the prediction has the file's grid then)."""
    volume = read_volume(path)
    on_grid = tuple(volume.shape) == tuple(grid[0]) and np.allclose(volume.affine, grid[1],
                                                                    atol=GRID_TOLERANCE_MM)
    data, kwargs, kind = labels_layer(volume, name=name, opacity=0.5, as_stored=on_grid)
    kwargs["colormap"] = colormap
    return make_layers([(data, kwargs, kind)])


class Train3DDock(QWidget):
    """Spatially partitioned 3D segmentation training from two layers, with live metrics and cancel."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        self.worker = None  # the latest file open, input write or prediction read (tests wait on it)
        self._start_worker = None  # checking and writing the latest Start's inputs
        self._preparing = False  # ... until it ends
        self._prediction_worker = None  # reading the latest job's prediction
        self._image_grid: tuple[tuple[int, ...], np.ndarray] | None = None  # shape, affine of the image
        self.out: str | None = None  # the job's output folder (kept for Resume)
        self.result: dict | None = None  # the job's "done" event
        self.prediction_layer: Labels | None = None
        self.last_message = ""  # the last problem shown as a notification
        self._label_names: list[str] | dict[int, str] | None = None  # of the labels layer trained on
        self._dice_curves: list[tuple[int, str]] = []  # (class, name) of each label value but background 0
        self._labels_colormap: Any = None
        self._image_name = ""
        self._written: dict[str, str] = {}  # files written for layers -> "layer 'NAME'"
        self._error = ""  # the job's last error event
        self._ranks_started = False  # the job's "start" event came: its ranks are training

        # Chosen here only: the prediction this dock adds (selected, as napari selects what it adds, and on
        # top) or any layer clicked to look at never becomes the next run's image or labels unasked.
        self._results: weakref.WeakSet[Layer] = weakref.WeakSet()  # the predictions it added
        self.image_choice = LayerChoice(viewer, Image, none_text=PICK, follow_selection=False)
        self.labels_choice = LayerChoice(viewer, Labels, none_text=PICK, follow_selection=False,
                                         automatic=lambda layer: layer not in self._results)
        self.image_file_button = QPushButton("File…")
        self.image_file_button.clicked.connect(lambda: self.choose_file(as_labels=False))
        self.labels_file_button = QPushButton("File…")
        self.labels_file_button.clicked.connect(lambda: self.choose_file(as_labels=True))

        self.model_combo = QComboBox()
        self.model_combo.addItems(MODELS)
        self.model_combo.setToolTip("MONAI BasicUNet (block multiple 16), UNet or DynUNet (multiple 8)")
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 256)
        self.width_spin.setValue(8)
        self.width_spin.setToolTip("Channels of the first level; deeper levels scale from it")
        self.mesh_combo = QComboBox()
        self.mesh_combo.setEditable(True)
        self.mesh_combo.addItems(MESH_CHOICES)
        self.mesh_combo.setToolTip("Blocks along D, H, W (e.g. 2x2x1), optionally xREPLICAS (data parallel)")
        self.mesh_combo.currentTextChanged.connect(self._mesh_changed)
        self.ranks_spin = QSpinBox()
        self.ranks_spin.setRange(1, 4096)
        self.ranks_spin.setValue(2)
        self.ranks_spin.setToolTip("Processes in all: the mesh's blocks x replicas")
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(BACKEND_CHOICES)
        self.backend_combo.setToolTip("auto: NCCL (a GPU per rank) if there are enough GPUs, else gloo (CPU)")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(200)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.lr_spin.setToolTip("Adam learning rate")
        self.crop_edit = QLineEdit("64,64,64")
        self.crop_edit.setToolTip("D,H,W of the random crop each step, or 'full' for the whole volume; each "
                                  "a multiple of the mesh x the model's downsampling")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("a new temporary folder per run")
        self.out_edit.setToolTip("Where the job keeps its inputs, checkpoint and prediction.nii.gz")
        self.out_button = QPushButton("…")
        self.out_button.clicked.connect(self.choose_out)
        self.resume_box = QCheckBox("Resume")
        self.resume_box.setToolTip("Continue the checkpoint in the output folder (else the last run's)")

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        # Dice rises from 0 towards 1 as training goes: the lower right corner stays free for the legend
        self.plot = MetricPlot(("loss", "Dice"), limits={"Dice": (0.0, 1.0)}, legend_loc="lower right")
        self.memory = StatusLabel(NO_MEMORY, lines=2)  # one line per few ranks
        self.panel = JobPanel()
        self.panel.job_event.connect(self._on_event)
        self.panel.finished.connect(self._on_finished)

        image_row = QHBoxLayout()
        image_row.addWidget(self.image_choice, stretch=1)
        image_row.addWidget(self.image_file_button)
        labels_row = QHBoxLayout()
        labels_row.addWidget(self.labels_choice, stretch=1)
        labels_row.addWidget(self.labels_file_button)
        form = QFormLayout()
        form.addRow("Image", image_row)
        form.addRow("Labels", labels_row)
        form.addRow("Model", self.model_combo)
        form.addRow("Width", self.width_spin)
        form.addRow("Mesh", self.mesh_combo)
        form.addRow("Ranks", self.ranks_spin)
        form.addRow("Backend", self.backend_combo)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Crop", self.crop_edit)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, stretch=1)
        out_row.addWidget(self.out_button)
        form.addRow("Output folder", out_row)
        layout = dock_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.resume_box)
        layout.addWidget(self.start_button)
        layout.addWidget(self.plot)
        layout.addWidget(self.memory)
        layout.addWidget(self.panel, stretch=1)
        self._restore_form()

    # -- the form, as last started ----------------------------------------------------------------------

    def form(self) -> dict[str, Any]:
        """The network, split and training settings (not the layers nor the output folder, which belong
        to one run)."""
        return {"model": self.model_combo.currentText(), "width": self.width_spin.value(),
                "mesh": self.mesh_combo.currentText().strip(), "ranks": self.ranks_spin.value(),
                "backend": self.backend_combo.currentText(), "steps": self.steps_spin.value(),
                "lr": self.lr_spin.value(), "crop": self.crop_edit.text().strip()}

    def _restore_form(self) -> None:
        """The form as it was last started (app.settings), each value checked: a stored one this form
        cannot show is left at its default."""
        values = form_values(FORM_NAME)
        for key, combo in (("model", self.model_combo), ("backend", self.backend_combo)):
            if values.get(key) in [combo.itemText(i) for i in range(combo.count())]:
                combo.setCurrentText(values[key])
        if isinstance(values.get("mesh"), str):
            self.mesh_combo.setCurrentText(values["mesh"])  # sets the ranks to its blocks: ranks after it
        for key, spin in (("width", self.width_spin), ("ranks", self.ranks_spin), ("steps", self.steps_spin)):
            if is_whole(values.get(key), spin.minimum()) and values[key] <= spin.maximum():
                spin.setValue(values[key])
        lr = values.get("lr")
        if (isinstance(lr, float | int) and not isinstance(lr, bool)
                and self.lr_spin.minimum() <= lr <= self.lr_spin.maximum()):  # False for NaN
            self.lr_spin.setValue(float(lr))
        if isinstance(values.get("crop"), str):
            self.crop_edit.setText(values["crop"])

    # -- inputs --------------------------------------------------------------------------------------

    def choose_file(self, *, as_labels: bool) -> None:
        """Open a volume file as an image (or labels) layer and pick it here."""
        title = "Open labels" if as_labels else "Open image"
        path, _ = QFileDialog.getOpenFileName(self, title, "", FILE_FILTER)
        if path:
            self.open_file(path, as_labels=as_labels)

    def open_file(self, path: str, *, as_labels: bool) -> None:
        """Read `path` in a worker (app.viewer.open_paths) and choose its layer when it arrives."""
        choice = self.labels_choice if as_labels else self.image_choice

        def done(_path: str, layers: list[Layer] | None) -> None:
            if layers:
                choice.set_layer(layers[0])

        self.worker = open_paths(self.viewer, [path], as_labels=as_labels, on_done=done)[0]

    def choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder")
        if folder:
            self.out_edit.setText(folder)

    def _mesh_changed(self, text: str) -> None:
        with contextlib.suppress(ValueError):  # a malformed mesh is reported by the check at Start
            self.ranks_spin.setValue(math.prod(int(v) for v in text.lower().split("x")))

    def split_settings(self) -> dict[str, Any]:
        """The form's network and split: model, mesh and crop (what `check_layout` takes)."""
        return {"model": self.model_combo.currentText(), "mesh": self.mesh_combo.currentText().strip(),
                "crop": self.crop_edit.text().strip().replace(" ", "")}

    def options(self, image: str, labels: str, out: str, *, resume: bool) -> list[str]:
        """train-seg's arguments from the form."""
        layout = self.split_settings()
        options = ["--image", image, "--labels", labels,
                   "--ranks", str(self.ranks_spin.value()), "--mesh", layout["mesh"],
                   "--model", layout["model"], "--width", str(self.width_spin.value()),
                   "--steps", str(self.steps_spin.value()), "--lr", repr(self.lr_spin.value()),
                   "--crop", layout["crop"], "--backend", self.backend_combo.currentText(), "--out", out]
        return [*options, "--resume"] if resume else options

    # -- start -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the layers' grids, write them in a worker thread, then start the training job."""
        if self.panel.running or self._preparing:
            return
        image, labels = self.image_choice.layer(), self.labels_choice.layer()
        if image is None or labels is None:
            self._problem(InputError("choose an image layer and a labels layer on its grid (or open files)"))
            return
        if image.rgb:
            self._problem(InputError("an RGB colour image: training needs a 3D greyscale volume",
                                     f"layer '{image.name}'"))
            return
        image_input, labels_input = volume_input(image), volume_input(labels)
        try:
            check_grids(image_input, labels_input, full_resolution(image).shape,
                        full_resolution(labels).shape)
        except InputError as exc:
            self._problem(exc)
            return
        resume = self.resume_box.isChecked()
        out = self.out_edit.text().strip() or (self.out if resume else None)
        if resume and not out:
            self._problem(InputError("nothing to resume: choose the output folder of an earlier run"))
            return
        out = out or tempfile.mkdtemp(prefix="tessera-train3d-")
        self._label_names = label_names(labels)
        self._labels_colormap = labels.colormap
        self._image_name = image.name
        self._image_grid = (tuple(full_resolution(image).shape), image_input.affine)
        worker = create_worker(check_and_write, image_input, labels_input, out,
                               full_resolution(image).shape, self.split_settings(), _start_thread=False,
                               _ignore_errors=True)
        worker.returned.connect(lambda written: self._launch(worker, out, resume, *written))
        worker.errored.connect(lambda exc: worker is self._start_worker and self._problem(exc))
        worker.finished.connect(self._prepared)
        self.worker = self._start_worker = worker
        self._preparing = True
        save_form(FORM_NAME, self.form())
        self.start_button.setEnabled(False)
        self.panel.status.setText("Preparing the inputs…")
        worker.start()

    def _prepared(self) -> None:
        self._preparing = False
        self.start_button.setEnabled(not self.panel.running)

    @staticmethod
    def _class_name(names: list[str] | dict[int, str] | None, value: int) -> str:
        if isinstance(names, dict):
            return str(names.get(value, f"class {value}"))
        return str(names[value]) if names and value < len(names) else f"class {value}"

    def _problem(self, exc: BaseException) -> None:
        self.last_message = notify_failure(exc, action="train on")
        self.panel.status.setText(self.last_message)
        self.start_button.setEnabled(not self.panel.running)

    def _launch(self, worker: object, out: str, resume: bool, paths: list[str], written: dict[str, str]
                ) -> None:
        if worker is not self._start_worker or self.panel.removed:  # superseded, or the dock was closed
            return
        self.out, self.result, self._written, self._error = out, None, written, ""
        self._ranks_started = False
        if not resume:
            self.plot.clear()
        self.memory.setText(NO_MEMORY)
        self.last_message = ""
        self.start_button.setEnabled(False)
        argv = main_command("train-seg", *self.options(*paths, out, resume=resume))
        self.panel.start(argv, message="Checking the job and starting the ranks…")

    def cancel(self) -> None:
        """Stop the job; it saves a checkpoint first (Resume continues it)."""
        self.panel.cancel()

    # -- job events ------------------------------------------------------------------------------------

    def _on_event(self, event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            self._ranks_started = True
            self._dice_curves = [(c, self._class_name(self._label_names, value))
                                 for c, value in enumerate(event["values"]) if value != 0]
            crop = "x".join(str(v) for v in event["crop"])
            self.panel.append_log(f"{event['ranks']} ranks, mesh {event['mesh']}, {event['backend']} on "
                                  f"{event['device']}, {event['model']}, crop {crop}, "
                                  f"from step {event['first_step']}")
        elif kind == "metric":
            step = event["step"]
            self.plot.add("loss", "Dice + CE", step, event["loss"])
            dice = event.get("dice") or []
            for c, name in self._dice_curves:
                self.plot.add("Dice", name, step, dice[c] if c < len(dice) else None)
            peaks = event.get("peak_mem_mb") or []
            ranks = ", ".join(f"{rank}: {mb:,.0f} MB" for rank, mb in enumerate(peaks))
            self.memory.setText(f"Peak memory per rank: {ranks} · step {event['step_time_s']:.2f} s")
        elif kind == "done":
            self.result = event
        elif kind == "error":
            self._error = str(event["message"])

    def _on_finished(self, code: int, stderr_tail: str) -> None:
        self.start_button.setEnabled(True)
        if self.result is None and self.panel.cancelled:  # killed before it said "done" (a long step)
            self._stopped_without_result()
            return
        if code != 0 and self.result is None:  # after "done" the work is saved whatever the exit (a kill)
            lines = [line for line in stderr_tail.splitlines() if line.strip()]
            self._problem(job_problem(self._error or (lines[-1] if lines else f"exit code {code}"),
                                      self._written))
            if self._ranks_started:  # a rank died, or out of memory: what was saved still counts
                self._kept_checkpoint(self.last_message + " ")
            return
        result = self.result
        if result is None:
            self.panel.status.setText("The job ended without a result.")
        elif result.get("stopped"):
            self.resume_box.setChecked(True)
            self.panel.status.setText(f"Stopped at step {result['step']}; checkpoint kept in "
                                      f"{result['checkpoint']}. Start continues it while 'Resume' is ticked.")
        elif result.get("prediction"):
            self.panel.status.setText(f"Trained to step {result['step']}; reading the prediction…")
            self._read_prediction(result["prediction"], result["step"])
        else:
            self.panel.status.setText(f"Trained to step {result['step']}; checkpoint in "
                                      f"{result['checkpoint']}.")

    def _kept_checkpoint(self, before: str) -> bool:
        """Say which step the job folder's checkpoint holds, after `before`, and tick Resume; False (and
        nothing said) when there is none."""
        step = saved_step(self.out) if self.out else None
        if step is None:
            return False
        self.resume_box.setChecked(True)
        self.panel.status.setText(f"{before}The checkpoint in {checkpoint_dir(self.out)} is at step {step}; "
                                  "Start continues it while 'Resume' is ticked.")
        return True

    def _stopped_without_result(self) -> None:
        """After a Cancel that ended without the job's "done" event (killed while a long step finished):
        what its folder's checkpoint holds, which the job saves as soon as it is asked to stop."""
        if not self._kept_checkpoint("Stopped. "):
            self.panel.status.setText("Cancelled before the first step: nothing to keep.")

    def _read_prediction(self, path: str, step: int) -> None:
        worker = create_worker(read_prediction, path, f"{self._image_name} prediction", self._labels_colormap,
                               self._image_grid, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda layers: self._add_prediction(worker, layers, step))
        worker.errored.connect(lambda exc: notify_failure(exc, path))
        self.worker = self._prediction_worker = worker
        worker.start()

    def _add_prediction(self, worker: object, layers: list[Layer], step: int) -> None:
        """Add a finished run's prediction, even once another run has started (it is that run's result);
        the status line then stays the new run's."""
        if worker is not self._prediction_worker:
            return
        (layer,) = layers
        self._results.add(layer)  # never chosen as the labels unless picked
        self.prediction_layer = add_quietly(self.viewer, layer)  # hidden while a cube is shown
        if not (self.panel.running or self._preparing):
            self.panel.status.setText(f"Trained to step {step}; prediction added as "
                                      f"'{self.prediction_layer.name}'.")
        notify_info(f"Training done (step {step}): '{self.prediction_layer.name}' added.")

