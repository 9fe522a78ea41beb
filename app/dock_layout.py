"""The layout every Tessera dock puts its controls in: a vertical one inside a scroll area.

A Qt dock cannot be shorter than its controls' minimum height, and napari's window cannot be shorter than
the docks stacked in its right-hand area. Laid out directly, Open above the tallest task dock (Hyperspectral,
Train 3D) made the window at least 1207 pixels tall: past the bottom of a 1080-pixel screen, with napari's
slider and status bar out of reach. In a scroll area a dock takes the height it is given and scrolls its
controls within it.

The mouse wheel scrolls the dock, also over a combo box, spin box or slider: Qt gives the wheel to the
control under the pointer, which would change the model, the mesh or the step count while the user only
meant to scroll. A control takes the wheel once it has the keyboard focus (clicked or tabbed to).
"""

from __future__ import annotations

from qtpy.QtCore import QCoreApplication, QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QAbstractSpinBox, QComboBox, QFrame, QScrollArea, QSlider, QVBoxLayout, QWidget

# Pixels of its controls a dock shows at least (Open: its buttons and recent files), scrolling the rest.
MIN_HEIGHT = 180
VALUE_CONTROLS = (QComboBox, QAbstractSpinBox, QSlider)  # what the wheel would change


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

    def showEvent(self, event: object) -> None:
        """Route the wheel of the value controls to the scroll area (again at each show: the filter is
        installed once per control, and controls added since are found)."""
        inner = self.widget()
        for control in [] if inner is None else inner.findChildren(VALUE_CONTROLS):
            control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not focused by the wheel itself
            control.installEventFilter(self)
        super().showEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # (QScrollArea filters its controls widget's events too: only the value controls are turned away)
        wheel = event.type() == QEvent.Type.Wheel
        if wheel and isinstance(watched, VALUE_CONTROLS) and not watched.hasFocus():
            QCoreApplication.sendEvent(self.viewport(), event)  # scrolls the dock instead
            return True
        return super().eventFilter(watched, event)


def dock_layout(dock: QWidget) -> QVBoxLayout:
    """A vertical layout for `dock`'s controls, in a scroll area that fills the dock (vertical scrolling
    only: the controls keep the dock's width)."""
    area = _ControlsArea(dock)
    area.setWidgetResizable(True)  # controls stretch to the dock's height when it has room for them
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # no Tab stop of its own: Tab goes to the controls
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    controls = QWidget()
    area.setWidget(controls)
    return QVBoxLayout(controls)
