"""The "View" dock: plane buttons, window/level presets and values, label opacity, segment statistics.

Thin: planes come from `app.planes`, windows from `app.window_level`, statistics from `engines.segments`
(run in a napari `thread_worker`, so a 197x233x189 volume never blocks the GUI).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels, Layer
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.dock_layout import dock_layout
from app.layers import (
    GRID_TOLERANCE_MM,
    SHOWN_DIGEST_KEY,
    SUBSAMPLE_VOXELS,
    display_grid,
    full_resolution,
    layer_affine,
    layer_volume,
)
from app.measured import file_grid
from app.notify import notify_failure, notify_warning
from app.planes import current_plane
from app.spaces import PIXELS, show_plane, space_of
from app.status_label import StatusLabel
from app.viewer import unproxied
from app.window_level import (
    CT_PRESETS,
    dicom_window,
    from_contrast_limits,
    install_window_level_drag,
    percentile_window,
    set_window_level,
    target_image_layer,
)
from engines.segments import SegmentStats, segment_statistics
from engines.volume import Volume

# (button text, app.planes plane name), left to right.
PLANE_BUTTONS = (("Axial", "axial"), ("Coronal", "coronal"), ("Sagittal", "sagittal"), ("3D", "3d"))
STATS_COLUMNS = ("Label", "Name", "Voxels", "Volume (mL)", "Mean ± SD")
def label_names(layer: Labels) -> list[str] | dict[int, str] | None:
    """Label names of `layer`: ``metadata["label_names"]``, its Volume's, or its "index"/"name" features."""
    names = layer.metadata.get("label_names")
    volume = layer_volume(layer)
    if names is None and volume is not None:
        names = volume.meta.get("label_names")
    if names is None and {"index", "name"} <= set(layer.features.columns):
        features = layer.features
        names = dict(zip(features["index"].astype(int), features["name"].astype(str), strict=True))
    return names


class LayerChoice(QComboBox):
    """A combo box of the viewer's layers of one type (top-most first), kept in step with the layer list.
    A hyperspectral cube's layers (pixels, not millimetres: app.spaces) are never among them.

    Selecting a layer of that type in the layer list chooses it here too, and when the chosen layer is
    removed the top-most one left is chosen. With `follow_selection` False (a job's inputs: a result
    clicked to look at, or lying on top, must not become one unasked) neither happens: a layer is chosen by
    itself only as it arrives, while nothing is chosen (at first, or once the chosen layer is removed:
    `none_text`, required then), and only if `automatic(layer)` allows it (not a job's result).
    `layer_changed` is emitted whenever the chosen layer changes: by the user, by the selection, or because
    layers came and went.
    """

    layer_changed = Signal()

    def __init__(self, viewer: napari.Viewer, layer_type: type[Layer], *, none_text: str | None = None,
                 follow_selection: bool = True, automatic: Callable[[Layer], bool] = lambda layer: True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._type, self._none_text = viewer, layer_type, none_text
        if not follow_selection and none_text is None:
            raise ValueError("a choice that does not follow the selection needs a none_text to show")
        self._follow, self._automatic = follow_selection, automatic
        self._current: Layer | None = None
        self._listed: weakref.WeakSet[Layer] = weakref.WeakSet()  # the layers at the last refresh
        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed,
                        viewer.layers.events.moved):
            emitter.connect(self.refresh)
        self.currentIndexChanged.connect(self._picked)
        self.refresh()
        if follow_selection:
            viewer.layers.selection.events.active.connect(self._follow_selection)
            self._follow_selection()

    def layer(self) -> Layer | None:
        """The chosen layer, or None."""
        return self._current

    def set_layer(self, layer: Layer | None) -> None:
        """Choose `layer` (which must be listed) or, with a `none_text`, None."""
        for index in range(self.count()):
            if self.itemData(index) is layer:
                self.setCurrentIndex(index)
                return
        raise ValueError(f"{layer!r} is not a choice")

    def refresh(self, event: object = None) -> None:
        layers = [layer for layer in reversed(self._viewer.layers) if self._accepts(layer)]
        if self._current in layers:
            keep = self._current
        elif self._follow:
            keep = layers[0] if layers else None
        else:
            keep = next((layer for layer in layers if layer not in self._listed and self._automatic(layer)),
                        None)
        self._listed = weakref.WeakSet(layers)
        self.blockSignals(True)
        self.clear()
        if self._none_text is not None:
            self.addItem(self._none_text, None)
        for layer in layers:
            layer.events.name.connect(self.refresh)
            self.addItem(layer.name, layer)
        self.setCurrentIndex(next(i for i in range(self.count()) if self.itemData(i) is keep)
                             if keep is not None else 0)
        self.blockSignals(False)
        self._picked()

    def _follow_selection(self, event: object = None) -> None:
        active = self._viewer.layers.selection.active
        if self._accepts(active) and active is not self._current and active in self._viewer.layers:
            self.refresh()  # the selection event may come before the layer list's "inserted"
            self.set_layer(active)

    def _accepts(self, layer: Layer | None) -> bool:
        return isinstance(layer, self._type) and space_of(layer) != PIXELS

    def _picked(self, index: int = -1) -> None:
        chosen = self.currentData() if self.count() else None
        if chosen is not self._current:
            self._current = chosen
            self.layer_changed.emit()


def _digest(layer: Layer) -> str | None:
    return layer.metadata.get(SHOWN_DIGEST_KEY)


def _statistics(labels: tuple[Any, np.ndarray, Volume | None, str | None],
                image: tuple[Any, Volume | None, str | None] | None, *,
                names: list[str] | dict[int, str] | None) -> tuple[list[SegmentStats], bool]:
    """Segment statistics of (labels data, affine, Volume, digest) with (image data, Volume, digest) on its
    grid, on the file's own voxels where the layers show them resampled (`app.measured`), and whether the
    file's voxels were counted (False: an edited oblique layer's display grid was)."""
    labels_data, affine, labels_volume, labels_digest = labels
    voxels, own_affine, own = file_grid(labels_data, affine, labels_volume, labels_digest, labels=True)
    image_voxels = None if image is None else image[0]
    if own and image is not None:  # the image too, on the same file grid; else both as shown
        image_data, image_volume, image_digest = image
        image_own, image_affine, image_is_own = file_grid(image_data, affine, image_volume, image_digest,
                                                          labels=False)
        if image_is_own and image_own.shape == voxels.shape and np.allclose(
                image_affine, own_affine, atol=GRID_TOLERANCE_MM):
            image_voxels = image_own
        else:
            voxels, own_affine, own = labels_data, affine, False
    shown_as_stored = labels_volume is None or not display_grid(labels_volume)[2]
    return segment_statistics(voxels, image_voxels, affine=own_affine, names=names), own or shown_as_stored


class ViewDock(QWidget):
    """Planes, window/level, label opacity and segment statistics for a napari viewer in RAS mm."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        self.stats_worker = None  # the latest statistics job (tests wait on it)
        self._closed = False  # set when the widget is destroyed: a job's late result is dropped
        self.destroyed.connect(lambda *_: setattr(self, "_closed", True))
        self._image: Image | None = None  # the image whose window the W/L controls show
        self._labels: Labels | None = None  # the labels layer whose opacity the slider shows
        install_window_level_drag(viewer)

        layout = dock_layout(self)
        layout.addWidget(self._plane_box())
        layout.addWidget(self._window_box())
        layout.addWidget(self._labels_box(), stretch=1)

        viewer.dims.events.order.connect(self._show_plane)
        viewer.dims.events.ndisplay.connect(self._show_plane)
        for emitter in (viewer.layers.selection.events.active, viewer.layers.events.inserted,
                        viewer.layers.events.removed, viewer.layers.events.moved):
            emitter.connect(self._follow_image)
        self._show_plane()
        self._follow_image()
        self._follow_labels()

    # -- planes ----------------------------------------------------------------------------------------

    def _plane_box(self) -> QGroupBox:
        box = QGroupBox("Plane")
        row = QHBoxLayout(box)
        self.plane_group = QButtonGroup(self)
        self.plane_buttons: dict[str, QPushButton] = {}
        for text, plane in PLANE_BUTTONS:
            button = QPushButton(text)
            button.setCheckable(True)
            button.clicked.connect(lambda _checked=False, p=plane: show_plane(self.viewer, p))
            self.plane_group.addButton(button)
            self.plane_buttons[plane] = button
            row.addWidget(button)
        return box

    def _show_plane(self, event: object = None) -> None:
        plane = current_plane(self.viewer)
        self.plane_group.setExclusive(False)  # "other" (a free dims order) checks no button
        for name, button in self.plane_buttons.items():
            button.setChecked(name == plane)
        self.plane_group.setExclusive(True)

    # -- window / level --------------------------------------------------------------------------------

    def _window_box(self) -> QGroupBox:
        box = QGroupBox("Window / level")
        layout = QVBoxLayout(box)
        self.image_label = StatusLabel("No image")
        layout.addWidget(self.image_label)

        self.width_spin = QDoubleSpinBox()
        self.level_spin = QDoubleSpinBox()
        for spin in (self.width_spin, self.level_spin):
            spin.setDecimals(3)
            spin.setRange(-1e9, 1e9)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._window_edited)
        self.width_spin.setMinimum(1e-3)
        values = QFormLayout()
        values.addRow("Width", self.width_spin)
        values.addRow("Level", self.level_spin)
        layout.addLayout(values)

        grid = QGridLayout()
        self.preset_buttons: dict[str, QPushButton] = {}
        for n, (name, (width, level)) in enumerate(CT_PRESETS.items()):
            button = QPushButton(name.capitalize())
            button.setToolTip(f"CT {name}: width {width:g} / level {level:g} HU")
            button.clicked.connect(lambda _checked=False, w=width, lv=level: self.apply_window(w, lv))
            grid.addWidget(button, n // 4, n % 4)
            self.preset_buttons[name] = button
        layout.addLayout(grid)

        row = QHBoxLayout()
        self.dicom_button = QPushButton("DICOM window")
        self.dicom_button.setToolTip("The window stored in the DICOM file")
        self.dicom_button.clicked.connect(self.apply_dicom_window)
        self.percentile_button = QPushButton("1st–99th percentile")
        self.percentile_button.setToolTip("From a subsample of the image (MR and other uncalibrated data)")
        self.percentile_button.clicked.connect(self.apply_percentile_window)
        row.addWidget(self.dicom_button)
        row.addWidget(self.percentile_button)
        layout.addLayout(row)
        hint = QLabel("Right-drag on the image: left/right = width, up/down = level")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        return box

    def apply_window(self, width: float, level: float) -> None:
        """Set the window of the image the W/L controls show."""
        if self._image is not None:
            set_window_level(self._image, width, level)

    def apply_dicom_window(self) -> None:
        """Use the window stored in the image's DICOM file."""
        window = dicom_window(layer_volume(self._image)) if self._image is not None else None
        if window is not None:
            self.apply_window(*window)

    def apply_percentile_window(self) -> None:
        """Window the image from its 1st to its 99th percentile (strided subsample, as on opening: of its
        Volume's own voxels when it has one, not of the fill around a resampled oblique volume)."""
        if self._image is None:
            return
        volume = layer_volume(self._image)
        data = volume.data if volume is not None else full_resolution(self._image)
        try:
            window = percentile_window(data, 1.0, 99.0, max_samples=SUBSAMPLE_VOXELS)
        except ValueError as exc:  # no finite value in the image
            notify_failure(exc)
            return
        self.apply_window(*window)

    def _follow_image(self, event: object = None) -> None:
        layer = target_image_layer(self.viewer)
        if layer is not self._image:
            if self._image is not None:
                self._image.events.contrast_limits.disconnect(self._show_window)
            self._image = layer
            if layer is not None:
                layer.events.contrast_limits.connect(self._show_window)
        volume = layer_volume(layer) if layer is not None else None
        modality = volume.modality if volume is not None else None
        if layer is None:
            self.image_label.setText("No image")
        else:
            self.image_label.setText(f"Image: {layer.name}" + (f" ({modality})" if modality else ""))
        for button in self.preset_buttons.values():  # HU presets mean nothing for MR
            button.setEnabled(layer is not None and modality in (None, "CT"))
        self.dicom_button.setEnabled(dicom_window(volume) is not None)
        self.percentile_button.setEnabled(layer is not None)
        self.width_spin.setEnabled(layer is not None)
        self.level_spin.setEnabled(layer is not None)
        self._show_window()

    def _show_window(self, event: object = None) -> None:
        if self._image is None:
            return
        width, level = from_contrast_limits(self._image.contrast_limits)
        low, high = self._image.contrast_limits_range
        step = 10.0 ** np.floor(np.log10(max(high - low, 1e-3) / 200))  # ~200 clicks across the data
        for spin, value in ((self.width_spin, width), (self.level_spin, level)):
            spin.blockSignals(True)
            spin.setSingleStep(step)
            spin.setValue(value)
            spin.blockSignals(False)

    def _window_edited(self, value: float = 0.0) -> None:
        self.apply_window(self.width_spin.value(), self.level_spin.value())

    # -- labels: opacity and statistics ----------------------------------------------------------------

    def _labels_box(self) -> QGroupBox:
        box = QGroupBox("Labels")
        layout = QVBoxLayout(box)
        form = QFormLayout()
        self.labels_choice = LayerChoice(self.viewer, Labels)
        self.labels_choice.layer_changed.connect(self._follow_labels)
        form.addRow("Labels", self.labels_choice)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.valueChanged.connect(self._opacity_edited)
        form.addRow("Opacity", self.opacity_slider)
        self.stats_image_choice = LayerChoice(self.viewer, Image, none_text="(no image)")
        form.addRow("Image", self.stats_image_choice)
        layout.addLayout(form)

        row = QHBoxLayout()
        self.stats_button = QPushButton("Segment statistics")
        self.stats_button.setToolTip("Voxels, volume and image mean ± SD inside each label")
        self.stats_button.clicked.connect(self.compute_statistics)
        self.stats_status = StatusLabel()
        row.addWidget(self.stats_button)
        row.addWidget(self.stats_status, stretch=1)
        layout.addLayout(row)

        self.stats_table = QTableWidget(0, len(STATS_COLUMNS))
        self.stats_table.setHorizontalHeaderLabels(STATS_COLUMNS)
        self.stats_table.verticalHeader().setVisible(False)
        self.stats_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.stats_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.stats_table, stretch=1)
        return box

    def _follow_labels(self) -> None:
        layer = self.labels_choice.layer()
        if self._labels is not None:
            self._labels.events.opacity.disconnect(self._show_opacity)
        self._labels = layer
        if layer is not None:
            layer.events.opacity.connect(self._show_opacity)
        self.opacity_slider.setEnabled(layer is not None)
        self.stats_button.setEnabled(layer is not None)
        self._show_opacity()

    def _show_opacity(self, event: object = None) -> None:
        if self._labels is not None:
            self.opacity_slider.blockSignals(True)
            self.opacity_slider.setValue(round(self._labels.opacity * 100))
            self.opacity_slider.blockSignals(False)

    def _opacity_edited(self, value: int) -> None:
        if self._labels is not None:
            self._labels.opacity = value / 100

    def compute_statistics(self) -> None:
        """Start the statistics of the chosen labels (and image) in a worker; the table fills on return."""
        labels = self.labels_choice.layer()
        if labels is None:
            notify_warning("Choose a labels layer for the statistics first.")
            return
        image = self.stats_image_choice.layer()
        affine = layer_affine(labels)
        labels_data = full_resolution(labels)
        image_data = None
        if image is not None:
            image_data = full_resolution(image)
            if (tuple(image_data.shape) != tuple(labels_data.shape)
                    or not np.allclose(layer_affine(image), affine, atol=GRID_TOLERANCE_MM)):
                notify_warning(f"'{image.name}' and '{labels.name}' are not on the same voxel grid; "
                               "choose the image the labels were drawn on, or no image.")
                return
        worker = create_worker(_statistics, (labels_data, affine, layer_volume(labels), _digest(labels)),
                               None if image is None else (image_data, layer_volume(image), _digest(image)),
                               names=label_names(labels), _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda stats: self._show_statistics(worker, stats))
        worker.errored.connect(lambda exc: self._statistics_failed(worker, exc))
        self.stats_worker = worker
        self.stats_status.setText(f"Computing statistics of '{labels.name}'…")
        worker.start()

    def _show_statistics(self, worker: object, result: tuple[list[SegmentStats], bool]) -> None:
        if worker is not self.stats_worker or self._closed:  # superseded, or the window is gone
            return
        stats, exact = result
        self.stats_status.setText(f"{len(stats)} labels" + ("" if exact else (
            " (counted on the oblique layers' display grid: the labels were edited there, or the image is "
            "on another file grid)")))
        self.stats_table.setRowCount(len(stats))
        for row, s in enumerate(stats):
            mean_sd = "" if s.mean is None else f"{s.mean:.4g} ± {s.sd:.4g}"
            cells = (str(s.label), s.name or "", f"{s.voxels:,}", f"{s.volume_ml:.4g}", mean_sd)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column != 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.stats_table.setItem(row, column, item)

    def _statistics_failed(self, worker: object, exc: BaseException) -> None:
        if worker is self.stats_worker and not self._closed:
            self.stats_status.setText("")
            notify_failure(exc)
