"""The "Hyperspectral" dock: open a cube, browse its bands, RGB composites, spectra, ground truth, classify.

A cube (ENVI, WHU-Hi .mat, TIFF; or the SYNTHETIC demo scene, built once by `main.py hsi-demo --cached`
in a background process) is read with `engines.io.cubes.read_cube` in a worker thread. The dock shows one
band at a time in an image layer (the slider names its wavelength; bands are read in a worker thread, the
newest slider value winning), an RGB composite of three chosen wavelengths with a percentile stretch
(also read in a worker), the ground truth as a labels layer with a legend of class names, and a plot of
spectra: the pixel under each click (several kept for comparison) and mean ± SD of each region drawn in
the "spectral regions" shapes layer (read in a worker). "Classify" runs
`main.py hsi-bench ... --events --save-map` as a background job (app.jobs) with progress and cancel, and
adds the classification map as a labels layer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
import tifffile
from matplotlib.figure import Figure
from napari.layers import Image, Labels, Shapes
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from app.cube_layers import PIXELS_KEY, band_view, class_map_layer, ground_truth_layer
from app.dock_layout import dock_layout
from app.job_panel import JobPanel
from app.jobs import main_command
from app.notify import notify_failure, notify_info, notify_warning
from app.plot import Canvas
from app.spaces import PIXELS, add_quietly, current_space, follow_spaces, replacing_cube, show_cube_plane
from app.status_label import StatusLabel
from app.turns import Turns
from app.viewer import unproxied
from engines.cube import Cube
from engines.errors import InputError
from engines.hyperspectral.display import (
    DEFAULT_RGB_NM,
    band_label,
    pixel_spectrum,
    region_spectrum,
    rgb_composite,
    rgb_problems,
)
from engines.io.cubes import read_cube

OPEN_FILTER = "Hyperspectral cubes (*.hdr *.mat *.tif *.tiff);;All files (*)"
REGIONS_LAYER = "spectral regions"
MAX_PIXEL_SPECTRA = 8
MAP_OPACITY = 0.6


def region_stats(cube: Cube, masks: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """(index, mean, sd, n) of the spectra in each non-empty mask (R, H, W) (reads the cube's rows)."""
    return [(i, *region_spectrum(cube, mask)) for i, mask in enumerate(masks) if mask.any()]


def _open(path: str) -> tuple[Cube, str, list[Image | Labels]]:
    """The cube at `path`, the path, and the layers it opens with, built here in the reading worker (napari
    spends 100-450 ms building a layer: thumbnail, features): its middle band, and its ground truth if any."""
    cube = read_cube(path)
    name = Path(path).stem
    data, limits = band_view(cube, cube.shape[2] // 2)
    layers = [Image(data, name=f"{name} band", colormap="gray", contrast_limits=limits,
                    metadata={PIXELS_KEY: True})]
    if cube.labels is not None:
        data, kwargs, _ = ground_truth_layer(cube, name)
        layers.append(Labels(data, **kwargs))
    return cube, path, layers


class LatestReader:
    """Runs `work(*request)` in a napari worker thread, one request at a time, newest first.

    A request made while one runs replaces any request still waiting (stale ones are dropped, so
    dragging the band slider reads only the band it ends on); `done(request, result)` gets each result
    on the GUI thread and `failed(exc)` each error. `busy` is True until the last request is done.
    """

    def __init__(self, work: Callable, done: Callable, failed: Callable[[BaseException], None]) -> None:
        self.work, self.done, self.failed = work, done, failed
        self.worker = None
        self._pending: tuple | None = None

    @property
    def busy(self) -> bool:
        """A request is running or waiting."""
        return self.worker is not None or self._pending is not None

    @property
    def waiting(self) -> bool:
        """A newer request waits for the running one."""
        return self._pending is not None

    def request(self, *request: object) -> None:
        """Run `work(*request)` next (now when idle), replacing any request still waiting."""
        self._pending = request
        if self.worker is None:
            self._next()

    def _next(self) -> None:
        request, self._pending = self._pending, None
        if request is None:
            self.worker = None
            return
        worker = create_worker(self.work, *request, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self.done(request, result))
        worker.errored.connect(self.failed)
        worker.finished.connect(self._next)
        self.worker = worker
        worker.start()


class HyperspectralDock(QWidget):
    """Browse and classify one hyperspectral cube at a time."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        follow_spaces(viewer)  # a cube is shown apart from volumes (done already in Tessera's own window)
        self.cube: Cube | None = None
        self.path: str | None = None
        self.band_layer: Image | None = None
        self.rgb_layer: Image | None = None
        self.gt_layer: Labels | None = None
        self.worker = None  # the latest read (tests wait on it)
        self.turns = Turns(self)  # show_cube's layer changes, one per turn of the event loop
        self._leaving: list[Image | Labels] = []  # an older cube's layers still to remove (show_cube)
        self.result: dict | None = None
        self.pixels: list[tuple[int, int]] = []
        self._pixel_lines: list = []  # the Line2D of each plotted pixel, as `pixels`
        self._map_file: str | None = None
        self._classified: str | None = None  # the cube the classification job runs on
        self._classified_names: list[str] = []  # and its class names
        self.map_layers: list[Labels] = []  # classification maps of the cube shown
        self._job: str | None = None  # what the panel runs: "demo" or "classify"
        self._demo_path: str | None = None  # the cached demo scene, once its job has written it
        # Band and RGB reads run off the GUI thread (a memory-mapped BIP cube reads a band in seconds).
        self.band_reader = LatestReader(band_view, self._band_read, self._view_failed)
        self.region_reader = LatestReader(region_stats, self._regions_read, self._view_failed)
        self.region_stats: list[tuple[int, np.ndarray, np.ndarray, int]] = []
        self.rgb_reader = LatestReader(
            lambda cube, nms, percent: rgb_composite(cube, nms, percent=percent),
            self._rgb_read,
            self._view_failed,
        )

        self.open_button = QPushButton("Open cube…")
        self.open_button.clicked.connect(self.choose_file)
        self.demo_button = QPushButton("Demo scene")
        self.demo_button.setToolTip("The SYNTHETIC WHU-Hi-like farmland scene (PROSAIL crops + lab spectra)")
        self.demo_button.clicked.connect(self.load_demo)
        self.info = StatusLabel("No cube open.", lines=2)

        self.band_slider = QSlider(Qt.Orientation.Horizontal)
        self.band_slider.setEnabled(False)
        self.band_slider.valueChanged.connect(self.set_band)
        self.band_text = StatusLabel()

        self.rgb_spins = []
        for nm in DEFAULT_RGB_NM:
            spin = QDoubleSpinBox()
            spin.setRange(0.0, 100000.0)
            spin.setDecimals(1)
            spin.setSuffix(" nm")
            spin.setValue(nm)
            self.rgb_spins.append(spin)
        self.stretch_spin = QDoubleSpinBox()
        self.stretch_spin.setRange(0.0, 20.0)
        self.stretch_spin.setValue(2.0)
        self.stretch_spin.setSuffix(" %")
        self.stretch_spin.setToolTip("Percentile clipped at each end of each channel")
        self.rgb_button = QPushButton("Show RGB")
        self.rgb_button.clicked.connect(self.show_rgb)

        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        self.axes = self.figure.add_subplot(111)
        self.canvas = Canvas(self.figure)
        self.canvas.setMinimumHeight(200)
        self.pick_box = QCheckBox("Plot the pixel under each click")
        self.pick_box.setChecked(True)
        self.region_button = QPushButton("Region mean ± SD")
        self.region_button.setToolTip(f"Mean ± SD of each shape drawn in the '{REGIONS_LAYER}' layer")
        self.region_button.clicked.connect(self.plot_regions)
        self.clear_button = QPushButton("Clear plot")
        self.clear_button.clicked.connect(self.clear_spectra)

        self.legend = QListWidget()
        self.legend.setMaximumHeight(150)

        self.method_combo = QComboBox()
        self.method_combo.addItems(["svm", "gmlc", "cnn"])
        self.method_combo.setToolTip(
            "svm: RBF SVM; gmlc: Gaussian maximum likelihood; cnn: spectral-spatial CNN"
        )
        self.per_class_spin = QSpinBox()
        self.per_class_spin.setRange(1, 100000)
        self.per_class_spin.setValue(25)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.quick_box = QCheckBox("Quick (reduced training)")
        self.classify_button = QPushButton("Classify")
        self.classify_button.clicked.connect(self.classify)
        self.panel = JobPanel()
        self.panel.job_event.connect(self._on_event)
        self.panel.finished.connect(self._on_finished)

        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.demo_button)
        rgb_row = QHBoxLayout()
        for spin in self.rgb_spins:
            rgb_row.addWidget(spin)
        plot_row = QHBoxLayout()
        plot_row.addWidget(self.region_button)
        plot_row.addWidget(self.clear_button)
        form = QFormLayout()
        form.addRow("Method", self.method_combo)
        form.addRow("Training pixels / class", self.per_class_spin)
        form.addRow("Seed", self.seed_spin)
        layout = dock_layout(self)
        layout.addLayout(row)
        layout.addWidget(self.info)
        layout.addWidget(self.band_slider)
        layout.addWidget(self.band_text)
        layout.addWidget(QLabel("RGB composite (R, G, B)"))
        layout.addLayout(rgb_row)
        stretch_row = QHBoxLayout()
        stretch_row.addWidget(QLabel("Stretch"))
        stretch_row.addWidget(self.stretch_spin)
        stretch_row.addWidget(self.rgb_button)
        layout.addLayout(stretch_row)
        layout.addWidget(self.canvas)
        layout.addWidget(self.pick_box)
        layout.addLayout(plot_row)
        layout.addWidget(QLabel("Ground truth"))
        layout.addWidget(self.legend)
        layout.addLayout(form)
        layout.addWidget(self.quick_box)
        layout.addWidget(self.classify_button)
        layout.addWidget(self.panel)
        layout.addStretch(1)
        viewer.mouse_drag_callbacks.append(self._on_mouse)
        self._draw_axes()

    # -- opening -------------------------------------------------------------------------------------

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open hyperspectral cube", "", OPEN_FILTER)
        if path:
            self.load(path)

    def load(self, path: str) -> None:
        """Read `path` in a worker thread, then show it."""
        worker = create_worker(_open, path, _start_thread=False, _ignore_errors=True)
        self._start_read(worker, f"Reading {Path(path).name}…", path)

    def load_demo(self) -> None:
        """Read the SYNTHETIC demo scene; first have `main.py hsi-demo --cached` write (once) or find it.

        Building the scene (PROSAIL, numba) holds the GIL for a while, so it runs in its own process.
        """
        if self._demo_path is not None and Path(self._demo_path).is_file():
            self.load(self._demo_path)
            return
        if self.panel.running:
            notify_warning("Wait for the running job to end (or cancel it).")
            return
        self._job = "demo"
        self.demo_button.setEnabled(False)
        self.classify_button.setEnabled(False)
        self.info.setText("Preparing the SYNTHETIC demo scene…")
        self.panel.start(self.demo_command(), message="Preparing the SYNTHETIC demo scene (built once)…")

    def demo_command(self) -> list[str]:
        """The `main.py hsi-demo` command line the Demo scene button runs."""
        return main_command("hsi-demo", "--cached", "--events")

    def _start_read(self, worker, message: str, path: str | None) -> None:
        self.worker = worker
        self.info.setText(message)
        worker.returned.connect(lambda out: self.worker is worker and self.show_cube(*out))
        worker.errored.connect(lambda exc: self._read_failed(worker, exc, path))
        worker.start()

    def _read_failed(self, worker, exc: BaseException, path: str | None) -> None:
        if worker is self.worker:
            self.info.setText("No cube open." if self.cube is None else self.info.text())
            notify_failure(exc, path)

    def _describe(self) -> str:
        """The open cube in words: name, size, bands, wavelength span, reader warnings."""
        cube, path = self.cube, self.path
        h, w, b = cube.shape
        synthetic = "SYNTHETIC " if "SYNTHETIC" in str(cube.meta.get("description", "")) + path else ""
        wl = cube.wavelengths_nm
        span = "" if wl is None else f", {np.min(wl):.0f}-{np.max(wl):.0f} nm"
        return f"{synthetic}{Path(path).stem}: {h} x {w} pixels, {b} bands{span}" + "".join(
            f"\n⚠ {m}" for m in cube.warnings
        )

    def show_cube(self, cube: Cube, path: str, layers: list[Image | Labels]) -> None:
        """Make `cube` the dock's cube: its `layers` (band, then ground truth if any: `_open`), legend,
        slider.

        The old cube's layers go and the new ones come one per turn of the event loop (`app.turns`: each
        costs napari 100-400 ms of the GUI thread); `self.cube` is None until the last step, so nothing
        acts on a cube half shown.
        """
        # what is shown, and what an interrupted show_cube had still to remove (or had added already)
        self._leaving += [layer for layer in (self.band_layer, self.rgb_layer, self.gt_layer) if layer]
        self._leaving += self.map_layers  # a classification of the old cube is no map of this one
        self.map_layers = []
        replacing_cube(self.viewer, True)  # the old cube's last layer going must not bring volumes back
        self.cube = None
        self.band_layer = self.rgb_layer = self.gt_layer = None
        self.band_slider.setEnabled(False)
        b = cube.shape[2]

        def remove() -> None:
            layer = self._leaving.pop(0)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

        def add(layer: Image | Labels) -> None:
            self.viewer.add_layer(layer)
            if isinstance(layer, Labels):
                self.gt_layer = layer
            else:
                self.band_layer = layer

        def finish() -> None:
            replacing_cube(self.viewer, False)
            if current_space(self.viewer) == PIXELS:
                show_cube_plane(self.viewer)  # fitted to this cube, whatever the size of the last
            self.cube, self.path = cube, path
            self.info.setText(self._describe())
            self.band_slider.blockSignals(True)
            self.band_slider.setRange(0, b - 1)
            self.band_slider.setValue(b // 2)
            self.band_slider.blockSignals(False)
            self.band_slider.setEnabled(True)
            self.band_text.setText(band_label(cube, b // 2))
            self._fill_legend()
            self.clear_spectra()
            self.panel.status.setText("")

        self.turns.run([*[remove] * len(self._leaving), *(lambda layer=layer: add(layer) for layer in layers),
                        finish])

    def _have_cube(self, *, ground_truth: bool = False) -> bool:
        """Whether a cube (with ground truth, if asked) is open; if not, a notification says what to do."""
        if self.cube is None and self.turns.busy:
            notify_info("The cube is still being shown: try again in a moment.")
        elif self.cube is None or (ground_truth and self.cube.labels is None):
            notify_warning("Open a cube with ground truth first (its <name>_gt file beside it)."
                           if ground_truth else "Open a cube first.")
        else:
            return True
        return False

    # -- bands and RGB -----------------------------------------------------------------------------------

    def set_band(self, band: int) -> None:
        """Show band `band` (0-based) in the band layer once read (in a worker) and name its wavelength."""
        if self.cube is None or self.band_layer is None:
            return
        self.band_text.setText(band_label(self.cube, band) + " (reading…)")
        self.band_reader.request(self.cube, band)

    def _band_read(self, request: tuple[Cube, int], view: tuple[np.ndarray, tuple[float, float]]) -> None:
        cube, band = request
        if cube is not self.cube or self.band_layer is None:
            return  # another cube was opened meanwhile
        self.band_layer.data, self.band_layer.contrast_limits = view
        if not self.band_reader.waiting:
            self.band_text.setText(band_label(cube, band))

    def _view_failed(self, exc: BaseException) -> None:
        notify_failure(exc, self.path)

    def show_rgb(self) -> None:
        """Add (or update), once read in a worker, the RGB composite of the three chosen wavelengths."""
        if not self._have_cube():
            return
        self.rgb_reader.request(self.cube, [s.value() for s in self.rgb_spins], self.stretch_spin.value())

    def _rgb_read(self, request: tuple, out: tuple[np.ndarray, list[int]]) -> None:
        cube, rgb, bands = request[0], *out
        if cube is not self.cube:
            return
        if problems := rgb_problems(cube, request[1], bands):
            notify_warning(f"RGB composite of {Path(self.path).stem}: " + "; ".join(problems))
        if self.rgb_layer is not None and self.rgb_layer in self.viewer.layers:
            self.rgb_layer.data = rgb
        else:
            self.rgb_layer = self.viewer.add_image(rgb, name=f"{Path(self.path).stem} RGB", rgb=True,
                                                   metadata={PIXELS_KEY: True})
        self.rgb_layer.metadata["bands"] = bands

    # -- spectra -----------------------------------------------------------------------------------------

    def _x(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The x values of a spectrum in increasing order, the band order that gives them (a file may list
        its wavelengths descending, or overlapping detectors twice), and the axis label."""
        wl = self.cube.wavelengths_nm
        x = np.arange(self.cube.shape[2]) if wl is None else np.asarray(wl)
        order = np.argsort(x, kind="stable")
        return x[order], order, "band" if wl is None else "wavelength (nm)"

    def _draw_axes(self) -> None:
        self.axes.set_xlabel("wavelength (nm)" if self.cube is None else self._x()[2])
        self.axes.set_ylabel("reflectance")
        self.canvas.draw_idle()

    def clear_spectra(self) -> None:
        self.pixels, self._pixel_lines = [], []
        self.axes.clear()
        self._draw_axes()

    def add_spectrum(self, row: int, col: int) -> np.ndarray | None:
        """Plot the spectrum of pixel (row, col) beside the ones already plotted (the oldest go first)."""
        if self.cube is None:
            return None
        h, w, _ = self.cube.shape
        if not (0 <= row < h and 0 <= col < w):
            return None
        spectrum = pixel_spectrum(self.cube, row, col)
        if len(self.pixels) >= MAX_PIXEL_SPECTRA:  # the oldest pixel's line goes (never a region's)
            self._pixel_lines.pop(0).remove()
            self.pixels.pop(0)
        x, order, _ = self._x()
        label = f"({row}, {col})"
        if self.cube.labels is not None and self.cube.labels[row, col] > 0:
            label += f" {self.cube.class_names[self.cube.labels[row, col] - 1]}"
        self._pixel_lines.append(self.axes.plot(x, spectrum[order], lw=1, label=label)[0])
        self.pixels.append((row, col))
        self.axes.legend(fontsize="x-small")
        self._draw_axes()
        return spectrum

    def regions_layer(self) -> Shapes:
        """The shapes layer whose shapes are the regions (created when missing)."""
        for layer in self.viewer.layers:
            if isinstance(layer, Shapes) and layer.name == REGIONS_LAYER:
                return layer
        return self.viewer.add_shapes(
            name=REGIONS_LAYER, edge_color="yellow", face_color="transparent", ndim=2,
            metadata={PIXELS_KEY: True},
        )

    def plot_regions(self) -> None:
        """Plot mean ± SD of every region drawn in the regions layer, once read in a worker
        (`region_stats` then holds (region number, mean, sd, n) per region)."""
        if not self._have_cube():
            return
        shapes = self.regions_layer()
        if len(shapes.data) == 0:
            notify_info(f"Draw rectangles or polygons in the '{REGIONS_LAYER}' layer, then press again.")
            return
        h, w, _ = self.cube.shape
        self.region_reader.request(self.cube, shapes.to_masks(mask_shape=(h, w)))

    def _regions_read(self, request: tuple, stats: list[tuple[int, np.ndarray, np.ndarray, int]]) -> None:
        if request[0] is not self.cube:
            return
        x, order, _ = self._x()
        for i, mean, sd, n in stats:
            (line,) = self.axes.plot(x, mean[order], lw=1.5, label=f"region {i + 1} (n={n})")
            self.axes.fill_between(x, (mean - sd)[order], (mean + sd)[order], color=line.get_color(),
                                   alpha=0.2)
        self.region_stats = stats
        self.axes.legend(fontsize="x-small")
        self._draw_axes()

    def _on_mouse(self, viewer, event):
        """A click (press and release without dragging) on the cube plots that pixel's spectrum; not while
        volumes are shown instead (app.spaces)."""
        if (self.cube is None or self.band_layer is None or current_space(self.viewer) != PIXELS
                or not self.pick_box.isChecked()):
            return
        position = self.band_layer.world_to_data(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            row, col = (int(np.rint(v)) for v in position[-2:])
            self.add_spectrum(row, col)

    # -- ground truth ----------------------------------------------------------------------------------

    def _fill_legend(self) -> None:
        self.legend.clear()
        if self.cube is None or self.gt_layer is None:
            return
        counts = np.bincount(self.cube.labels.ravel(), minlength=len(self.cube.class_names) + 1)
        colors = self.gt_layer.colormap.map(np.arange(1, len(self.cube.class_names) + 1))
        for c, (name, rgba) in enumerate(zip(self.cube.class_names, colors, strict=True), start=1):
            pix = QPixmap(12, 12)
            pix.fill(QColor.fromRgbF(*[float(v) for v in rgba[:3]]))
            self.legend.addItem(QListWidgetItem(QIcon(pix), f"{c}  {name}  ({counts[c]:,} px)"))

    # -- classification --------------------------------------------------------------------------------

    def classify_command(self, map_file: str) -> list[str]:
        """The `main.py hsi-bench` command line the Classify button runs."""
        args = [
            "hsi-bench",
            self.path,
            "--method",
            self.method_combo.currentText(),
            "--per-class",
            str(self.per_class_spin.value()),
            "--seed",
            str(self.seed_spin.value()),
            "--events",
            "--save-map",
            map_file,
        ]
        if "ground_truth" in self.cube.meta:
            args += ["--gt", str(self.cube.meta["ground_truth"])]
        if self.quick_box.isChecked():
            args.append("--quick")
        return main_command(*args)

    def classify(self) -> None:
        """Run the protocol in a background process; the map is added when it is done."""
        if not self._have_cube(ground_truth=True):
            return
        if self.panel.running:
            return
        self._job = "classify"
        # the map is named for this cube and its classes, even if another is opened meanwhile
        self._classified, self._classified_names = self.path, list(self.cube.class_names)
        self._map_file = str(Path(tempfile.mkdtemp(prefix="tessera-hsi-")) / "classification.tif")
        self.result = None
        self.classify_button.setEnabled(False)
        self.panel.start(
            self.classify_command(self._map_file),
            message=f"Classifying with {self.method_combo.currentText()}…",
        )

    def cancel(self) -> None:
        self.panel.cancel()

    def _on_event(self, event: dict) -> None:
        if event["event"] == "done":
            if self._job == "demo":
                self._demo_path = event["result"]["mat"]
            else:
                self.result = event["result"]

    def _on_finished(self, code: int, stderr_tail: str) -> None:
        self.classify_button.setEnabled(True)
        self.demo_button.setEnabled(True)
        what = "Demo scene" if self._job == "demo" else "Classification"
        if self._job == "demo" and (self.panel.cancelled or code != 0):
            self.info.setText("No cube open." if self.cube is None else self._describe())
        if self.panel.cancelled:  # SIGTERM may end it with any exit code; cancelling is not a failure
            self.panel.status.setText(f"{what} cancelled.")
            return
        if code != 0:
            last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else f"exit code {code}"
            notify_failure(
                InputError(last.removeprefix("tessera: ")),
                action="build the demo scene" if self._job == "demo" else "classify",
            )
            self.panel.status.setText(f"{what} failed.")
            return
        if self._job == "demo":
            self.panel.status.setText("")
            self.load(self._demo_path)
            return
        if self.result is None:
            self.panel.status.setText("Classification cancelled.")
            return
        r, classified = self.result, self._classified
        self.panel.status.setText(
            f"{Path(classified).stem}: {r['method']}, {r['split']}: OA {100 * r['OA']:.2f} %, "
            f"AA {100 * r['AA']:.2f} %, κ {r['kappa']:.3f} ({r['seconds']:.0f} s)"
        )
        if classified != self.path:  # another cube was opened meanwhile: this map is not of it
            shown = Path(self.path).stem if self.path else "another cube"
            self.panel.status.setText(f"{self.panel.status.text()}; no map: {shown} is open now")
            return
        # read and built in a worker: the GUI thread only inserts the layer
        name, names = f"{Path(classified).stem} {r['method']} map", self._classified_names

        def read_map() -> Labels:
            data, kwargs, _ = class_map_layer(tifffile.imread(r["map"]), names, name)
            return Labels(data, **{**kwargs, "opacity": MAP_OPACITY})

        worker = create_worker(read_map, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda layer: self._add_map(layer, classified))
        worker.errored.connect(lambda exc: notify_failure(exc, r["map"]))
        worker.start()

    def _add_map(self, layer: Labels, classified: str) -> None:
        """Add a classification map, unless another cube was opened while it was read; hidden (and shown
        with the cube) if volumes are shown now."""
        if classified == self.path:
            self.map_layers.append(add_quietly(self.viewer, layer))
