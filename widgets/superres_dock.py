"""The "Super-resolution" dock: the slice on screen, super-resolved at any scale in (1, 4], as you scroll.

The current slice of the chosen image (in the plane shown) goes to a napari worker thread: bicubic comes
back at once, then the network's result replaces it. Only one slice is computed at a time; a newer request
aborts an older one at its next step and the older result is dropped, so scrolling never queues work.
The result is an image layer whose affine is `engines.superres.infer.slice_volume`'s: it overlays the
original in world millimetres. Fine-tuning ("Adapt to this scan") and whole-volume export run as
`main.py sr-train` / `main.py sr` processes through `app.jobs.Job`, with progress and cancel; they read
the single file the layer shows unchanged, else a temporary NIfTI of the layer written in a worker thread
(removed when the job ends).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.dock_layout import dock_layout
from app.job_panel import JobPanel
from app.jobs import main_command
from app.layers import full_resolution, layer_affine, unchanged_source
from app.notify import notify_failure, notify_info, notify_warning
from app.settings import config_dir
from app.status_label import StatusLabel
from app.viewer import unproxied
from app.window_level import strided_sample
from engines.errors import InputError
from engines.superres.data import intensity_range
from engines.superres.geometry import check_scales
from engines.superres.infer import PLANE_WORLD_AXES, bicubic, slice_volume, super_resolve, take_slice
from engines.superres.weights import cached_model, shipped_models
from engines.volume import Volume
from widgets.view_dock import LayerChoice

SCROLL_MODEL = "sr_light"  # fast enough to follow the scroll
REFINE_MODEL = "sr_full"  # better, a few times slower: on request
# metadata key of the layers this dock makes (so they are never chosen as a source)
SR_KEY = "superres"
COMPARE_MODES = ("Network", "Split with bicubic", "Side by side with bicubic")
# Voxels read to set the network's intensity range (0.5/99.5 percentiles) of a volume.
RANGE_SAMPLES = 2**20
ADAPT_STEPS = 300
NIFTI_FILTER = "NIfTI (*.nii.gz *.nii)"


def write_temporary(data: Any, affine: np.ndarray) -> str:
    """Write `data` with `affine` to a new temporary NIfTI (uncompressed: quick); a worker thread's job."""
    from engines.io.nifti import write_volume

    path = Path(tempfile.mkdtemp(prefix="tessera_sr_")) / "volume.nii"
    write_volume(Volume(data=np.asarray(data), affine=affine), path)
    return str(path)


def _steps(data: Any, axes: tuple[int, int, int], index: int, sx: float, sy: float, model: str,
           value_range: tuple[float, float] | None):
    """The work of one request, as a generator so a newer request can abort it between steps.

    Yields ("range", (lo, hi)) when it had to compute the range, ("bicubic", slice, bicubic, ms), then
    ("network", network result, ms).
    """
    if value_range is None:
        value_range = intensity_range(strided_sample(data, RANGE_SAMPLES).astype(np.float32))
        yield ("range", value_range)
    t0 = time.perf_counter()
    plane = take_slice(data, axes, index)
    low_res = bicubic(plane, sx, sy)
    yield ("bicubic", plane, low_res, (time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    net = cached_model(model)
    result = super_resolve(plane, sx, sy, net, value_range=value_range)
    yield ("network", result, (time.perf_counter() - t0) * 1000)


class SuperResolutionDock(QWidget):
    """Super-resolve the current slice of an image layer; refine, adapt the model to the scan, export."""

    result_shown = Signal(str)  # "bicubic" or "network", after the layer was updated (tests wait on it)
    job_done = Signal(int)  # exit code of the background job (adapt or export)

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        self.worker = None  # the slice being computed
        self._pending: dict | None = None  # the newest request waiting for the worker
        self._request_id = 0
        self._ranges: dict[int, tuple[float, float]] = {}  # id(source layer) -> network intensity range
        self.layer: Image | None = None  # the super-resolved slice layer
        self.bicubic_layer: Image | None = None  # side-by-side comparison layer
        self._shown: dict | None = None  # what the layers show: request, bicubic, network results
        self._last_key: tuple | None = None  # the latest request's slice, scales and model
        self.export_worker = None  # the latest slice export (tests wait on it)
        self.source_worker = None  # writing a layer for a background job (tests wait on it)
        self._temporary: str | None = None  # the file written for the job, removed when it ends
        self._outputs: list[str] = []  # files the background job reported in its "done" event
        self._job_text = ""  # what the running job does, for its closing message
        self._job_error = ""  # the message of the job's last "error" event

        self.image_choice = LayerChoice(viewer, Image)
        self.image_choice.layer_changed.connect(self.request)
        self.live_check = QCheckBox("Super-resolve the slice on screen")
        self.live_check.setToolTip("Follows the slice as you scroll, in the plane shown")
        self.live_check.toggled.connect(self._live_toggled)
        self.scale_x = self._scale_slider()
        self.scale_y = self._scale_slider()
        self.scale_x_label, self.scale_y_label = QLabel(), QLabel()
        self.per_axis_check = QCheckBox("Per axis (vertical scale separately)")
        self.per_axis_check.setToolTip("e.g. a through-plane slice of thick-slice data: scale only the "
                                       "slice-thickness axis (the other at 1.0)")
        self.per_axis_check.toggled.connect(self._scales_changed)
        self.model_combo = QComboBox()
        for name in shipped_models():
            self.model_combo.addItem(name, name)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(SCROLL_MODEL)))
        self.model_combo.setToolTip("Model used while scrolling")
        self.model_combo.currentIndexChanged.connect(self.request)
        self.compare_combo = QComboBox()
        self.compare_combo.addItems(COMPARE_MODES)
        self.compare_combo.currentIndexChanged.connect(self._show)
        self.split_slider = QSlider(Qt.Orientation.Horizontal)
        self.split_slider.setRange(0, 100)
        self.split_slider.setValue(50)
        self.split_slider.setToolTip("Split position: bicubic on one side, the network on the other")
        self.split_slider.valueChanged.connect(self._show)
        self.latency_label = StatusLabel()
        self.status = StatusLabel()

        self.refine_button = QPushButton("Refine")
        self.refine_button.setToolTip(f"This slice with the full model ({REFINE_MODEL})")
        self.refine_button.clicked.connect(self.refine)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Drop the slice being computed (a Refine on a large slice takes seconds)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.export_slice_button = QPushButton("Export slice…")
        self.export_slice_button.clicked.connect(self.export_slice)
        self.export_volume_button = QPushButton("Export volume…")
        self.export_volume_button.setToolTip("Every slice of the plane shown, in the background (main.py sr)")
        self.export_volume_button.clicked.connect(self.export_volume)
        self.adapt_steps = QSpinBox()
        self.adapt_steps.setRange(10, 20000)
        self.adapt_steps.setValue(ADAPT_STEPS)
        self.adapt_button = QPushButton("Adapt to this scan")
        self.adapt_button.setToolTip("Fine-tune the scrolling model on pairs made from this scan's own "
                                     "slices (self-supervised), in the background")
        self.adapt_button.clicked.connect(self.adapt)
        self.panel = JobPanel()  # the background process (adapt or export volume)
        self.panel.job_event.connect(self._job_event)
        self.panel.finished.connect(self._job_finished)

        form = QFormLayout()
        form.addRow("Image", self.image_choice)
        form.addRow(self.live_check)
        form.addRow("Scale", self._with_label(self.scale_x, self.scale_x_label))
        form.addRow(self.per_axis_check)
        form.addRow("Vertical", self._with_label(self.scale_y, self.scale_y_label))
        form.addRow("Model", self.model_combo)
        form.addRow("Compare", self.compare_combo)
        form.addRow("Split", self.split_slider)
        form.addRow("Latency", self.latency_label)
        buttons = QHBoxLayout()
        for button in (self.refine_button, self.stop_button, self.export_slice_button,
                       self.export_volume_button):
            buttons.addWidget(button)
        job_box = QGroupBox("Background")
        job_layout = QVBoxLayout(job_box)
        adapt_row = QHBoxLayout()
        adapt_row.addWidget(self.adapt_button)
        adapt_row.addWidget(QLabel("steps"))
        adapt_row.addWidget(self.adapt_steps)
        job_layout.addLayout(adapt_row)
        job_layout.addWidget(self.panel)
        layout = dock_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(job_box)
        layout.addStretch(1)

        self._closed = False
        self._viewer_events = [(viewer.dims.events.current_step, self.request),
                               (viewer.dims.events.order, self.request),
                               (viewer.dims.events.ndisplay, self.request),
                               (viewer.layers.events.removed, self._layer_removed)]
        for emitter, callback in self._viewer_events:
            emitter.connect(callback)
        self.destroyed.connect(lambda *_: self._teardown())
        self._scales_changed()

    # -- controls --------------------------------------------------------------------------------------

    def _scale_slider(self) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(10, 40)  # tenths: 1.0 .. 4.0 in steps of 0.1
        slider.setValue(20)
        slider.valueChanged.connect(self._scales_changed)
        return slider

    @staticmethod
    def _with_label(slider: QSlider, label: QLabel) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(slider, stretch=1)
        label.setMinimumWidth(40)
        layout.addWidget(label)
        return row

    def scales(self) -> tuple[float, float]:
        """(sx, sy): horizontal and vertical scale of the plane on screen."""
        sx = self.scale_x.value() / 10
        return sx, (self.scale_y.value() / 10 if self.per_axis_check.isChecked() else sx)

    def set_scales(self, sx: float, sy: float | None = None) -> None:
        """Set the sliders (sy given = per-axis mode)."""
        self.per_axis_check.setChecked(sy is not None)
        self.scale_y.setValue(round(10 * (sx if sy is None else sy)))
        self.scale_x.setValue(round(10 * sx))

    def _scales_changed(self, *_: object) -> None:
        per_axis = self.per_axis_check.isChecked()
        self.scale_y.setEnabled(per_axis)
        sx, sy = self.scales()
        self.scale_x_label.setText(f"×{sx:.1f}")
        self.scale_y_label.setText(f"×{sy:.1f}")
        self.request()

    def _teardown(self) -> None:
        """The widget is going: stop listening to the viewer and drop work in flight."""
        self._closed = True
        self._pending = None
        for emitter, callback in self._viewer_events:
            emitter.disconnect(callback)
        if self.worker is not None:
            self.worker.quit()
        self.panel.cancel()

    def _live_toggled(self, on: bool) -> None:
        if on:
            self.request()
        else:
            self._drop_in_flight()

    def stop(self) -> None:
        """Drop the slice being computed (its network step runs on, but its result is not shown)."""
        self._drop_in_flight()
        self.status.setText("Stopped: the slice being computed is not shown.")

    def _drop_in_flight(self) -> None:
        self._pending = self._last_key = None  # asking again recomputes
        self._request_id += 1  # what is in flight is stale: its results are not shown
        if self.worker is not None:
            self.worker.quit()

    # -- the request -----------------------------------------------------------------------------------

    def source(self) -> Image | None:
        """The chosen image layer, unless it is one of this dock's own layers."""
        layer = self.image_choice.layer()
        return None if layer is None or SR_KEY in layer.metadata else layer

    def _slice_request(self, model: str) -> dict:
        """What to compute now: {layer, axes, index, sx, sy, model, ...}; InputError says why not."""
        layer = self.source()
        if layer is None:
            raise InputError("choose an image layer (open a volume first)")
        if layer.rgb or layer.ndim != 3:
            raise InputError(f"'{layer.name}' is {'an RGB' if layer.rgb else f'a {layer.ndim}D'} layer; "
                             "super-resolution works on grey 3D volumes (a 2D image: python main.py sr)")
        if not layer.visible:  # hidden by the user, or by a hyperspectral cube shown (app.spaces)
            raise InputError(f"'{layer.name}' is hidden: show it to super-resolve its slice")
        if self.viewer.dims.ndisplay != 2:
            raise InputError("switch to a 2D plane (View dock) to super-resolve the slice on screen")
        sx, sy = check_scales(*self.scales())
        offset = self.viewer.dims.ndim - layer.ndim  # napari aligns a layer with the last world axes
        vert, horiz = (a - offset for a in self.viewer.dims.displayed)
        normal = ({0, 1, 2} - {vert, horiz}).pop()
        data = full_resolution(layer)
        index = int(np.round(np.asarray(layer.world_to_data(self.viewer.dims.point))[normal]))
        if not 0 <= index < data.shape[normal]:
            raise InputError(f"the slice on screen is outside '{layer.name}'")
        return {"layer": layer, "data": data, "axes": (normal, vert, horiz), "index": index, "sx": sx,
                "sy": sy, "model": model, "affine": layer_affine(layer)}

    def request(self, *_: object, model: str | None = None) -> None:
        """Super-resolve the slice on screen (if live, or when `model` is given, e.g. by Refine)."""
        if self._closed or (model is None and not self.live_check.isChecked()):
            return
        try:
            req = self._slice_request(model or self.model_combo.currentData() or SCROLL_MODEL)
        except InputError as exc:
            if self.live_check.isChecked() or model is not None:
                self.status.setText(exc.problem)
            return
        key = (id(req["layer"]), req["axes"], req["index"], req["sx"], req["sy"], req["model"])
        if key == self._last_key and model is None:
            return  # e.g. a dims event caused by updating our own layer: nothing new to compute
        self._last_key = key
        self._request_id += 1
        req["id"], req["t0"] = self._request_id, time.perf_counter()
        self._pending = req
        if self.worker is not None:
            self.worker.quit()  # aborts at its next step; its results are dropped (stale id)
        else:
            self._start_pending()

    def refine(self) -> None:
        """This slice with the full model."""
        self.request(model=REFINE_MODEL)

    def _start_pending(self) -> None:
        req, self._pending = self._pending, None
        if req is None or self._closed:
            return
        worker = create_worker(_steps, req["data"], req["axes"], req["index"], req["sx"], req["sy"],
                               req["model"], self._ranges.get(id(req["layer"])),
                               _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(lambda step: self._step(req, step))
        worker.errored.connect(lambda exc: self._failed(req, exc))
        worker.finished.connect(lambda: self._worker_done(worker))
        self.worker = worker
        self.stop_button.setEnabled(True)
        self.status.setText(f"Super-resolving slice {req['index']} (×{req['sx']:g} / ×{req['sy']:g}, "
                            f"{Path(req['model']).stem})…")
        worker.start()

    def _worker_done(self, worker: object) -> None:
        if worker is self.worker:
            self.worker = None
            if not self._closed:  # its widgets may be gone
                self.stop_button.setEnabled(False)
            self._start_pending()

    def _step(self, req: dict, step: tuple) -> None:
        kind = step[0]
        if self._closed:
            return
        if kind == "range":
            self._ranges[id(req["layer"])] = step[1]
            return
        if req["id"] != self._request_id:
            return  # stale: a newer request is on its way
        if kind == "bicubic":
            _, plane, low_res, ms = step
            self._shown = {**req, "bicubic": low_res, "network": None, "shape_in": plane.shape,
                           "bicubic_ms": ms}
        else:
            _, result, ms = step
            self._shown["network"] = result
            total = (time.perf_counter() - req["t0"]) * 1000
            h, w = self._shown["shape_in"]
            self.latency_label.setText(
                f"bicubic {self._shown['bicubic_ms']:.0f} ms · {Path(req['model']).stem} {ms:.0f} ms "
                f"(shown after {total:.0f} ms) · {w}×{h} → {result.shape[1]}×{result.shape[0]}")
            self.status.setText(f"Slice {req['index']} of '{req['layer'].name}', ×{req['sx']:g} / "
                                f"×{req['sy']:g}, {Path(req['model']).stem}")
        self._show()
        self.result_shown.emit(kind)

    def _failed(self, req: dict, exc: BaseException) -> None:
        if self._closed or req["id"] != self._request_id:
            return
        self._last_key = None  # the same request may be tried again
        if isinstance(exc, InputError):
            self.status.setText(exc.problem)
        else:
            self.status.setText("")
            notify_failure(exc, action="super-resolve a slice of")

    # -- showing ---------------------------------------------------------------------------------------

    def _show(self, *_: object) -> None:
        """Put the latest result into the layer(s), in the chosen comparison mode."""
        shown = self._shown
        if shown is None:
            return
        src: Image = shown["layer"]
        if src not in self.viewer.layers or not src.visible:  # removed or hidden while it was computed
            return
        mode = self.compare_combo.currentText()
        network = shown["network"]
        picture = shown["bicubic"] if network is None else network
        if network is not None and mode == COMPARE_MODES[1]:
            split = round(picture.shape[1] * self.split_slider.value() / 100)
            picture = picture.copy()
            picture[:, :split] = shown["bicubic"][:, :split]
        data, affine = slice_volume(picture, shown["affine"], shown["axes"], shown["index"], shown["sx"],
                                    shown["sy"])
        what = "bicubic" if network is None else Path(shown["model"]).stem
        self.layer = self._put(self.layer, f"{src.name} SR", data, affine, src,
                               {"model": what, "index": shown["index"], "scales": (shown["sx"], shown["sy"])})
        side = mode == COMPARE_MODES[2] and network is not None
        if side:
            # beside the slice, one slice width (plus 5%) along the horizontal axis
            horiz = shown["axes"][2]
            shifted = affine.copy()
            shifted[:3, 3] += affine[:3, horiz] * data.shape[horiz] * 1.05
            low, _ = slice_volume(shown["bicubic"], shown["affine"], shown["axes"], shown["index"],
                                  shown["sx"], shown["sy"])
            self.bicubic_layer = self._put(self.bicubic_layer, f"{src.name} bicubic", low, shifted, src,
                                           {"model": "bicubic", "index": shown["index"]})
        elif self.bicubic_layer is not None and self.bicubic_layer in self.viewer.layers:
            self.bicubic_layer.visible = False

    def _put(self, layer: Image | None, name: str, data: np.ndarray, affine: np.ndarray, src: Image,
             info: dict) -> Image:
        """Update `layer` (or add it) with data and affine; the source layer stays selected."""
        if layer is not None and layer in self.viewer.layers:
            layer.data = data
            layer.affine = affine
            layer.name = name
            layer.metadata[SR_KEY] = info
            layer.contrast_limits = src.contrast_limits
            layer.visible = True
            return layer
        selected = self.viewer.layers.selection.active
        layer = self.viewer.add_image(data, affine=affine, name=name, colormap=src.colormap,
                                      contrast_limits=src.contrast_limits, axis_labels=src.axis_labels,
                                      units=src.units, metadata={SR_KEY: info})
        if selected is not None:
            self.viewer.layers.selection.active = selected  # keep the dock's source chosen
        return layer

    def _layer_removed(self, event: Any) -> None:
        if event.value is self.layer:
            self.layer = self._last_key = None
        if event.value is self.bicubic_layer:
            self.bicubic_layer = None

    # -- export ----------------------------------------------------------------------------------------

    def export_slice(self) -> None:
        """Write the super-resolved slice shown (network result) as a one-slice NIfTI in world mm."""
        shown = self._shown
        if shown is None or shown["network"] is None:
            notify_warning("Super-resolve a slice first (tick 'Super-resolve the slice on screen').")
            return
        name = f"{shown['layer'].name}_slice{shown['index']}_sr.nii.gz"
        path, _ = QFileDialog.getSaveFileName(self, "Export super-resolved slice", name, NIFTI_FILTER)
        if not path:
            return
        data, affine = slice_volume(shown["network"], shown["affine"], shown["axes"], shown["index"],
                                    shown["sx"], shown["sy"])
        volume = Volume(data=data, affine=affine, meta={SR_KEY: {"model": shown["model"]}})
        from engines.io.nifti import write_volume

        worker = create_worker(write_volume, volume, path, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda _: self._saved(path))
        worker.errored.connect(lambda exc: notify_failure(exc, path, action="write"))
        self.export_worker = worker
        worker.start()

    def _saved(self, path: str) -> None:
        self.status.setText(f"Saved {path}")
        notify_info(f"Super-resolved slice saved to {path}")

    def _with_source(self, layer: Image, then: Callable[[str], None]) -> None:
        """Call `then(path)` with a file `main.py` reads as the layer's volume: the file it shows unchanged,
        else a temporary NIfTI of its data and affine, written in a worker thread."""
        path = unchanged_source(layer)
        if path is not None:
            then(path)
            return
        worker = create_worker(write_temporary, full_resolution(layer), layer_affine(layer),
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda written: self._source_written(worker, written, then))
        worker.errored.connect(lambda exc: self._source_failed(worker, exc))
        self.source_worker = worker
        self._set_busy(True)
        self.status.setText(f"Writing '{layer.name}' to a temporary file for the job…")
        worker.start()

    def _source_written(self, worker: object, path: str, then: Callable[[str], None]) -> None:
        if self._closed or worker is not self.source_worker:
            shutil.rmtree(Path(path).parent, ignore_errors=True)
            return
        self._drop_temporary()
        self._temporary = path
        self.source_worker = None
        self._set_busy(False)
        self.status.setText("")
        then(path)

    def _source_failed(self, worker: object, exc: BaseException) -> None:
        if worker is not self.source_worker:
            return
        self.source_worker = None
        self._set_busy(False)
        self.status.setText("")
        notify_failure(exc, action="write a temporary copy for the job of")

    def _drop_temporary(self) -> None:
        """Remove the file written for the last job (and its folder)."""
        if self._temporary is not None:
            shutil.rmtree(Path(self._temporary).parent, ignore_errors=True)
            self._temporary = None

    def export_volume(self) -> None:
        """Super-resolve every slice of the plane shown with `main.py sr` in a background process."""
        try:
            req = self._slice_request(self.model_combo.currentData() or SCROLL_MODEL)
            normal, vert, _ = req["axes"]
            # layer data axes are RAS-ordered (app.layers.canonical_view): name the plane by its normal
            plane = next(p for p, axes in PLANE_WORLD_AXES.items() if axes[0] == normal)
            sx, sy = (req["sx"], req["sy"]) if PLANE_WORLD_AXES[plane][1] == vert else (req["sy"], req["sx"])
        except InputError as exc:
            self.status.setText(exc.problem)
            return
        name = f"{req['layer'].name}_sr.nii.gz"
        path, _ = QFileDialog.getSaveFileName(self, "Export super-resolved volume", name, NIFTI_FILTER)
        if not path:
            return
        self._with_source(req["layer"], lambda source: self.start_job(
            main_command("sr", source, "--scale", f"{sx:g}", "--scale-y", f"{sy:g}", "--plane", plane,
                         "--model", req["model"], "--out", path, "--progress"),
            f"Exporting {plane} ×{sx:g} / ×{sy:g} to {path}"))

    # -- adapt -----------------------------------------------------------------------------------------

    def adapt(self) -> None:
        """Fine-tune the scrolling model on this scan in a background `main.py sr-train --adapt` job."""
        layer = self.source()
        if layer is None:
            self.status.setText("choose an image layer to adapt the model to")
            return
        base = self.model_combo.currentData() or SCROLL_MODEL
        out = config_dir() / "superres" / f"adapted_{time.strftime('%Y%m%d_%H%M%S')}"
        self._with_source(layer, lambda source: self.start_job(
            main_command("sr-train", "--adapt", source, "--init", base, "--out", str(out), "--name",
                         f"{Path(base).stem}_adapted", "--steps-l1", str(self.adapt_steps.value()),
                         "--log-every", "10"),
            f"Adapting {Path(base).stem} to '{layer.name}'"))

    # -- background jobs -------------------------------------------------------------------------------

    def start_job(self, argv: list[str], text: str) -> None:
        """Run `argv` (a main.py command printing JSON-lines events) with progress and cancel."""
        if self.panel.running:
            notify_warning("A background job is running; cancel it or wait for it to finish.")
            return
        self._outputs = []
        self._job_text = text
        self._job_error = ""
        self._set_busy(True)
        self.panel.start(argv, message=text + "…")

    def _job_event(self, event: dict) -> None:
        if event["event"] == "done":
            self._outputs = list(event.get("outputs") or [])
        elif event["event"] == "error":
            self._job_error = str(event.get("message", ""))

    def _job_finished(self, code: int, tail: str) -> None:
        self._set_busy(False)
        self._drop_temporary()
        status = self.panel.status
        if self.panel.cancelled:
            status.setText(f"{self._job_text}: cancelled")
        elif code != 0:
            lines = [line.strip() for line in tail.splitlines() if line.strip()]
            problem = self._job_error or (lines[-1] if lines else "no message")
            status.setText(f"Failed (exit {code}): {problem}")
            notify_warning(f"{self._job_text} failed: {problem}")
        elif not self._outputs:
            status.setText(f"{self._job_text}: stopped, nothing written")
        elif "sr-train" in self.panel.job.argv:
            adapted = self._outputs[0]
            self.model_combo.addItem(f"{Path(adapted).stem} (this scan)", adapted)
            self.model_combo.setCurrentIndex(self.model_combo.count() - 1)
            status.setText(f"Adapted model in use: {adapted}")
        else:
            status.setText(f"Saved {self._outputs[0]}")
            notify_info(f"Super-resolved volume saved to {self._outputs[0]}")
        self.job_done.emit(code)

    def _set_busy(self, busy: bool) -> None:
        self.adapt_button.setEnabled(not busy)
        self.export_volume_button.setEnabled(not busy)
