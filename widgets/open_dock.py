"""The "Open" dock: file and DICOM-folder pickers, recent files, and a summary of the selected volume.

Thin: reading goes through `app.viewer.open_paths` (a worker thread per path); listing a folder's DICOM
series goes through `engines.io.list_dicom_series` in a worker too. The summary is of the active layer's
Volume (``layer.metadata["volume"]``), so it also describes what the demo or the command line opened.
"""

from __future__ import annotations

import os

import napari
import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from app import settings
from app.dock_layout import dock_layout
from app.layers import RESLICE_ABOVE_DEG, display_grid, layer_volume, obliquity_deg
from app.notify import notify_failure
from app.status_label import StatusLabel
from app.viewer import open_paths, unproxied
from engines.io import VOLUME_EXTENSIONS, DicomSeriesInfo, list_dicom_series
from engines.volume import Volume

FILE_FILTER = "Volumes (" + " ".join(f"*{s}" for s in VOLUME_EXTENSIONS) + ");;All files (*)"
PATH_ROLE = Qt.ItemDataRole.UserRole
SERIES_ROLE = Qt.ItemDataRole.UserRole + 1  # a recent DICOM folder's SeriesInstanceUID (None: none kept)


def volume_summary(volume: Volume, name: str = "") -> str:
    """A few lines on what was loaded: shape, spacing, orientation, modality, window, warnings."""
    spacing = " x ".join(f"{s:.3g}" for s in volume.spacing)
    lines = [
        name or os.path.basename(str(volume.source).rstrip("/\\")),
        f"shape {' x '.join(map(str, volume.shape))} ({np.dtype(volume.data.dtype).name})",
        f"spacing {spacing} mm",
        f"orientation {volume.orientation}    modality {volume.modality or 'unknown'}",
    ]
    if volume.window is not None:
        lines.append(f"window W {volume.window[1]:g} / L {volume.window[0]:g}")
    shape, _, resampled = display_grid(volume)
    oblique = obliquity_deg(volume.affine)
    if resampled:
        lines.append(f"oblique by {oblique:.2f} deg: shown sampled (nearest voxel) on an axis-aligned "
                     f"{' x '.join(map(str, shape))} grid, so 2D views are true world planes; the cursor "
                     "readout gives the file's own voxels")
    elif oblique > RESLICE_ABOVE_DEG:
        lines.append(f"oblique by {oblique:.2f} deg and too large to resample for display: 2D views show the "
                     "nearest voxel slice, placed for the world origin")
    lines += [f"warning: {w}" for w in volume.warnings]
    if volume.source:
        lines.append(f"source: {volume.source}")
    return "\n".join(lines)


class OpenDock(QWidget):
    """Open volumes (files or DICOM folders), reopen recent ones, and see what was loaded."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = unproxied(viewer)
        self._pending = 0  # opens not finished yet

        self.file_button = QPushButton("Open file…")
        self.file_button.setToolTip("NIfTI, DICOM, NRRD, MetaImage or MGH/MGZ volume(s)")
        self.folder_button = QPushButton("Open DICOM folder…")
        self.folder_button.setToolTip("A folder of DICOM series (if several: you choose, the largest first)")
        self.as_labels = QCheckBox("open as labels (segmentation)")
        self.recent = QListWidget()
        self.recent.setToolTip("Double-click to open again (a DICOM folder: the series shown then)")
        self.status = StatusLabel()
        self.summary = StatusLabel("Nothing loaded yet.")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        buttons = QHBoxLayout()
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.folder_button)
        layout = dock_layout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.as_labels)
        layout.addWidget(QLabel("Recent"))
        layout.addWidget(self.recent, stretch=1)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Loaded"))
        layout.addWidget(self.summary, stretch=1)

        self.file_button.clicked.connect(self.choose_files)
        self.folder_button.clicked.connect(self.choose_folder)
        self.recent.itemDoubleClicked.connect(
            lambda item: self.open([item.data(PATH_ROLE)], series_uid=item.data(SERIES_ROLE)))
        viewer.layers.selection.events.active.connect(self._show_active)
        viewer.layers.events.inserted.connect(self._show_active)
        self.refresh_recent()
        self._show_active()

    # -- actions ---------------------------------------------------------------------------------------

    def choose_files(self) -> None:
        """Ask for one or more volume files and open them."""
        paths, _ = QFileDialog.getOpenFileNames(self, "Open volume(s)", self._start_dir(), FILE_FILTER)
        if paths:
            self.open(paths)

    def choose_folder(self) -> None:
        """Ask for a DICOM folder; list its series off the GUI thread, let the user pick one, open it."""
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._start_dir())
        if not folder:
            return
        self._busy(f"Looking for DICOM series in {folder}…")
        worker = create_worker(list_dicom_series, folder, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda series: self._open_series(folder, series))
        worker.errored.connect(lambda exc: self._folder_failed(folder, exc))
        worker.start()

    def open(self, paths: list[str], *, series_uid: str | None = None) -> None:
        """Open `paths` through `app.viewer.open_paths` (worker threads)."""
        self._busy("Reading " + ", ".join(os.path.basename(p.rstrip("/\\")) for p in paths) + "…")
        self._pending += len(paths)
        open_paths(self.viewer, paths, series_uid=series_uid, as_labels=self.as_labels.isChecked(),
                   on_done=self._done)

    # -- callbacks -------------------------------------------------------------------------------------

    def _open_series(self, folder: str, series: list[DicomSeriesInfo]) -> None:
        self._busy("")
        if len(series) <= 1:  # none: read_volume says so, naming the folder
            self.open([folder])
            return
        # list_dicom_series puts the largest first: it is the default choice
        items = [f"{s.description or 'no description'} ({s.modality or '?'}, {s.slices} images) {s.uid}"
                 for s in series]
        choice, ok = QInputDialog.getItem(self, "Choose a DICOM series",
                                          f"{folder} holds {len(series)} series:", items, 0, False)
        if ok and choice in items:
            self.open([folder], series_uid=series[items.index(choice)].uid)

    def _folder_failed(self, folder: str, exc: BaseException) -> None:
        notify_failure(exc, folder)
        self._busy("")

    def _done(self, path: str, layers: list | None) -> None:
        self._pending -= 1
        if layers is None and not os.path.exists(path):
            settings.remove_recent(path)  # a recent file that was moved or deleted
        if self._pending <= 0:
            self._busy("")
        self.refresh_recent()

    def refresh_recent(self) -> None:
        """Reload the recent-files list from the settings file."""
        self.recent.clear()
        for entry in settings.recent_entries():
            text = os.path.basename(entry.path.rstrip("/\\")) or entry.path
            tip = entry.path
            if entry.series_uid:
                text += f" — {entry.series or 'series ' + entry.series_uid}"
                tip += f"\n{entry.series or 'series'}: UID {entry.series_uid}"
            item = QListWidgetItem(text)
            item.setData(PATH_ROLE, entry.path)
            item.setData(SERIES_ROLE, entry.series_uid)
            item.setToolTip(tip)
            self.recent.addItem(item)

    def _show_active(self, event: object = None) -> None:
        layer = self.viewer.layers.selection.active
        volume = layer_volume(layer) if layer is not None else None
        if volume is not None:
            self.summary.setText(volume_summary(volume, layer.name))

    def _busy(self, message: str) -> None:
        self.status.setText(message)
        for button in (self.file_button, self.folder_button):
            button.setEnabled(not message)

    def _start_dir(self) -> str:
        recent = settings.recent_files()
        return os.path.dirname(recent[0]) if recent else os.path.expanduser("~")
