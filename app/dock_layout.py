"""The layout every Tessera dock puts its controls in: a vertical one inside a scroll area.

A Qt dock cannot be shorter than its controls' minimum height, and napari's window cannot be shorter than
the docks stacked in its right-hand area. Laid out directly, Open above the tallest task dock (Hyperspectral,
Train 3D) made the window at least 1207 pixels tall: past the bottom of a 1080-pixel screen, with napari's
slider and status bar out of reach. In a scroll area a dock takes the height it is given and scrolls its
controls within it.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

# Pixels of its controls a dock shows at least (Open: its buttons and recent files), scrolling the rest.
MIN_HEIGHT = 180


class _ControlsArea(QScrollArea):
    """A scroll area that asks for its controls' own size (QScrollArea caps its wish at 24 lines of text,
    so Qt would share the window's height between docks by that cap, not by what each holds), and for their
    width at least, with room for the scroll bar: only the height scrolls."""

    def sizeHint(self) -> QSize:
        inner = self.widget()
        return super().sizeHint() if inner is None else inner.sizeHint()

    def minimumSizeHint(self) -> QSize:
        inner = self.widget()
        if inner is None:
            return super().minimumSizeHint()
        least = inner.minimumSizeHint()
        width = least.width() + self.verticalScrollBar().sizeHint().width()
        return QSize(width, min(least.height(), MIN_HEIGHT))


def dock_layout(dock: QWidget) -> QVBoxLayout:
    """A vertical layout for `dock`'s controls, in a scroll area that fills the dock (vertical scrolling
    only: the controls keep the dock's width)."""
    area = _ControlsArea(dock)
    area.setWidgetResizable(True)  # controls stretch to the dock's height when it has room for them
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    controls = QWidget()
    area.setWidget(controls)
    return QVBoxLayout(controls)
