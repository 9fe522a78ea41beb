"""Orientation letters (R/L, A/P, S/I) on the four edges of the canvas, following the plane shown.

The letters are computed from what is on screen (`dims.order` and the camera's axis directions), so they
stay right after any camera flip, not only for the planes of `app.planes`. They are shown only for a 2D
view of a 3D RAS world that shows at least one Volume layer; in 3D they are hidden.
"""

from __future__ import annotations

import napari
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QLabel, QWidget

from app.layers import layer_volume

POSITIVE = "RAS"  # letter where world axis 0, 1, 2 increases
NEGATIVE = "LPI"  # and where it decreases
MARGIN_PX = 6
LETTER_STYLE = "color: #ffd24d; font-weight: bold; font-size: 15px; background: transparent;"


def camera(viewer: napari.components.ViewerModel) -> napari.components.Camera:
    """The viewer's camera (napari >= 0.9 keeps it on `viewer.scene`)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def edge_letters(viewer: napari.components.ViewerModel) -> tuple[str, str, str, str] | None:
    """Letters at the (top, bottom, left, right) edges, or None when they do not apply (3D, not RAS)."""
    if viewer.dims.ndisplay != 2 or viewer.dims.ndim != 3:
        return None
    if not any(layer.visible and layer_volume(layer) is not None for layer in viewer.layers):
        return None  # nothing in RAS on screen (a hyperspectral cube's pixels, say)
    vertical, horizontal = viewer.dims.order[-2:]
    _, v_dir, h_dir = (str(getattr(d, "value", d)) for d in camera(viewer).orientation)
    top, bottom = POSITIVE[vertical], NEGATIVE[vertical]
    if v_dir == "down":
        top, bottom = bottom, top
    left, right = POSITIVE[horizontal], NEGATIVE[horizontal]
    if h_dir == "right":
        left, right = right, left
    return top, bottom, left, right


class OrientationLetters(QObject):
    """Four QLabels laid over the canvas widget, repositioned when it resizes and relabelled when the
    plane, camera or layers change."""

    EDGES = ("top", "bottom", "left", "right")

    def __init__(self, viewer: napari.Viewer) -> None:
        canvas = viewer.window._qt_viewer.canvas.native  # napari exposes no public canvas widget
        super().__init__(canvas)
        self._viewer = viewer
        self._canvas: QWidget = canvas
        self.labels: dict[str, QLabel] = {}
        for edge in self.EDGES:
            label = QLabel(canvas)
            label.setObjectName(f"tessera_orientation_{edge}")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setStyleSheet(LETTER_STYLE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.labels[edge] = label
        canvas.installEventFilter(self)
        for emitter in (viewer.dims.events.order, viewer.dims.events.ndisplay, viewer.dims.events.ndim,
                        camera(viewer).events.orientation, viewer.layers.events.inserted,
                        viewer.layers.events.removed):
            emitter.connect(self.update_letters)
        for layer in viewer.layers:  # a Volume layer shown or hidden
            layer.events.visible.connect(self.update_letters)
        viewer.layers.events.inserted.connect(
            lambda event: event.value.events.visible.connect(self.update_letters))
        self.update_letters()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._canvas and event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def update_letters(self, event: object = None) -> None:
        letters = edge_letters(self._viewer)
        for edge, label in self.labels.items():
            if letters is None:
                label.hide()
                continue
            label.setText(letters[self.EDGES.index(edge)])
            label.adjustSize()
            label.show()
        self._place()

    def _place(self) -> None:
        width, height = self._canvas.width(), self._canvas.height()
        for edge, label in self.labels.items():
            w, h = label.width(), label.height()
            x, y = {
                "top": ((width - w) // 2, MARGIN_PX),
                "bottom": ((width - w) // 2, height - h - MARGIN_PX),
                "left": (MARGIN_PX, (height - h) // 2),
                "right": (width - w - MARGIN_PX, (height - h) // 2),
            }[edge]
            label.move(x, y)
            label.raise_()
