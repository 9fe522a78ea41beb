"""The "Surface" dock: a labels layer -> smoothed VTK surface as a napari Surface layer, and its export.

The mesh is computed by `engines.surface.labels_to_mesh` in a worker thread with the labels layer's own
data-to-world transform, so its vertices are world millimetres and the Surface layer needs no transform
of its own to overlay the labels. Labels of an oblique file, shown resampled on an axis-aligned grid, are
meshed from the file's own voxels (`app.measured`) unless they were painted since.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.layers import Labels, Surface
from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.dock_layout import dock_layout
from app.layers import SHOWN_DIGEST_KEY, full_resolution, layer_affine, layer_volume
from app.measured import file_grid
from app.notify import notify_failure, notify_info, notify_warning
from app.spaces import add_quietly
from app.status_label import StatusLabel
from app.viewer import unproxied
from engines.surface import Mesh, labels_to_mesh, write_mesh
from engines.volume import Volume
from widgets.view_dock import LayerChoice

EXPORT_FILTER = ("Surface mesh (*.stl *.obj *.vtp);;STL (*.stl);;Wavefront OBJ (*.obj);;"
                 "VTK PolyData (*.vtp)")
# Key of a Surface layer's metadata holding the Mesh it shows.
MESH_KEY = "mesh"


class Cancelled(Exception):
    """The user cancelled making a surface (raised in the worker between stages)."""


def _mesh(data: Any, affine: np.ndarray, volume: Volume | None, digest: str | None, label: int | None,
          **options: Any) -> Mesh:
    """`labels_to_mesh` of a labels layer's data, on its file's own voxels where it shows them resampled
    (and unchanged: `digest`)."""
    voxels, voxel_affine, _ = file_grid(data, affine, volume, digest, labels=True)
    return labels_to_mesh(voxels, voxel_affine, label, **options)


class SurfaceDock(QWidget):
    """Make a surface from a labels layer (one label or all) and export it to STL, OBJ or VTP."""

    progress = Signal(float)  # fraction done, emitted from the worker thread (Qt queues it to the GUI)

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        self.worker = None  # the latest surface or export job (tests wait on it)
        self._closed = False  # set when the widget is destroyed: a job's late result is dropped
        self.destroyed.connect(lambda *_: setattr(self, "_closed", True))
        self.last_surface: Surface | None = None

        self.labels_choice = LayerChoice(viewer, Labels)
        self.label_spin = QSpinBox()
        self.label_spin.setRange(0, 2**31 - 1)
        self.label_spin.setSpecialValueText("all labels")  # shown for 0, the background
        self.label_spin.setToolTip("One label value, or all non-zero labels (each its own closed surface)")
        self.smoothing_spin = QSpinBox()
        self.smoothing_spin.setRange(0, 500)
        self.smoothing_spin.setValue(15)
        self.smoothing_spin.setToolTip("Windowed-sinc iterations (0 keeps the voxel staircase)")
        self.pass_band_spin = QDoubleSpinBox()
        self.pass_band_spin.setDecimals(3)
        self.pass_band_spin.setRange(0.001, 1.0)
        self.pass_band_spin.setSingleStep(0.01)
        self.pass_band_spin.setValue(0.1)
        self.pass_band_spin.setToolTip("Windowed-sinc pass band: smaller smooths more")
        self.decimate_spin = QDoubleSpinBox()
        self.decimate_spin.setRange(0.0, 0.95)
        self.decimate_spin.setSingleStep(0.05)
        self.decimate_spin.setValue(0.5)
        self.decimate_spin.setToolTip("Fraction of triangles to remove (topology kept: surfaces stay closed)")

        self.make_button = QPushButton("Make surface")
        self.make_button.clicked.connect(self.make_surface)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("The selected surface layer (else the last made) to STL, OBJ or VTP")
        self.export_button.clicked.connect(self.export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop making the surface (it stops after the current stage)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setVisible(False)
        self.status = StatusLabel()
        self.progress.connect(self._show_progress)  # a bound slot: queued from the worker thread

        form = QFormLayout()
        form.addRow("Labels", self.labels_choice)
        form.addRow("Label", self.label_spin)
        form.addRow("Smoothing iterations", self.smoothing_spin)
        form.addRow("Pass band", self.pass_band_spin)
        form.addRow("Decimate", self.decimate_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.make_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        layout = dock_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- make ------------------------------------------------------------------------------------------

    def make_surface(self) -> None:
        """Mesh the chosen labels in a worker; add a Surface layer when it is done."""
        labels = self.labels_choice.layer()
        if labels is None:
            notify_warning("Choose a labels layer to make a surface from (open a segmentation as labels).")
            return
        label = self.label_spin.value() or None
        stop = threading.Event()

        def progress(fraction: float) -> None:  # called by the worker between stages: where it can stop
            if stop.is_set():
                raise Cancelled("surface cancelled")
            self.progress.emit(fraction)

        worker = create_worker(
            _mesh, full_resolution(labels), layer_affine(labels), layer_volume(labels),
            labels.metadata.get(SHOWN_DIGEST_KEY), label,
            smoothing_iterations=self.smoothing_spin.value(), pass_band=self.pass_band_spin.value(),
            decimate=self.decimate_spin.value(), progress=progress,
            _start_thread=False, _ignore_errors=True,
        )
        worker.stop_event = stop
        worker.returned.connect(lambda mesh: self._add_surface(worker, labels, label, mesh))
        worker.errored.connect(lambda exc: self._failed(worker, exc))
        self._busy(worker, f"Making the surface of '{labels.name}'…")

    def cancel(self) -> None:
        """Stop making the surface: the worker stops after its current stage and its result is dropped; the
        dock is free at once."""
        worker, self.worker = self.worker, None
        if worker is not None and hasattr(worker, "stop_event"):
            worker.stop_event.set()
        self._busy(None, "Surface cancelled.")

    def _add_surface(self, worker: object, labels: Labels, label: int | None, mesh: Mesh) -> None:
        if worker is not self.worker or self._closed:
            return
        self._busy(None, f"{mesh.n_triangles:,} triangles")
        # Colour each vertex as its label is coloured in the labels layer.
        colors = labels.colormap.map(mesh.values)
        colors[:, 3] = 1.0
        name = f"{labels.name} surface" + ("" if label is None else f" (label {label})")
        self.last_surface = add_quietly(self.viewer, Surface(  # hidden while a cube is shown
            (mesh.vertices, mesh.faces, mesh.values), name=name, vertex_colors=colors, shading="smooth",
            units=labels.units, axis_labels=labels.axis_labels, metadata={MESH_KEY: mesh},
        ))

    # -- export ----------------------------------------------------------------------------------------

    def export_target(self) -> Surface | None:
        """The surface to export: the selected Surface layer, else the last one this dock made."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Surface):
            return active
        if self.last_surface is not None and self.last_surface in self.viewer.layers:
            return self.last_surface
        return None

    def export(self) -> None:
        """Ask for a file name and write the export target there (format from the extension)."""
        layer = self.export_target()
        if layer is None:
            notify_warning("Make a surface (or select a surface layer) before exporting.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export surface", f"{layer.name}.stl", EXPORT_FILTER)
        if not path:
            return
        if not Path(path).suffix:
            path += ".stl"
        mesh = layer.metadata.get(MESH_KEY)
        if mesh is None:  # a surface from elsewhere: its own vertices (our layers carry no transform)
            mesh = Mesh(vertices=layer.vertices, faces=layer.faces, values=layer.vertex_values)
        worker = create_worker(write_mesh, mesh, path, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda written: self._exported(worker, written))
        worker.errored.connect(lambda exc: self._export_failed(worker, path, exc))
        self._busy(worker, f"Writing {path}…")

    def _exported(self, worker: object, path: Path) -> None:
        if worker is self.worker and not self._closed:
            self._busy(None, f"Saved {path}")
            notify_info(f"Surface saved to {path}")

    def _export_failed(self, worker: object, path: Path, exc: BaseException) -> None:
        if worker is self.worker and not self._closed:
            self._busy(None, "")
            notify_failure(exc, path, action="export the surface to")

    # -- state -----------------------------------------------------------------------------------------

    def _busy(self, worker: object | None, message: str) -> None:
        self.status.setText(message)
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(worker is not None)
        for button in (self.make_button, self.export_button):
            button.setEnabled(worker is None)
        self.cancel_button.setEnabled(worker is not None and hasattr(worker, "stop_event"))
        if worker is not None:
            self.worker = worker
            worker.start()

    def _show_progress(self, fraction: float) -> None:
        self.progress_bar.setValue(round(100 * fraction))

    def _failed(self, worker: object, exc: BaseException) -> None:
        if worker is self.worker and not self._closed:
            self._busy(None, "")
            notify_failure(exc)
