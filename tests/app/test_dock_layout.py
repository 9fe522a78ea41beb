"""A dock's controls in a scroll area: the dock may be shorter than they are, and the wheel scrolls it."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtGui import QWheelEvent
from qtpy.QtWidgets import QApplication, QComboBox, QScrollArea, QSpinBox, QWidget

from app.dock_layout import MIN_HEIGHT, dock_layout

pytestmark = pytest.mark.qt


def _wheel(widget: QWidget) -> None:
    """One notch of the wheel, down, over the middle of `widget`."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(widget, event)


@pytest.fixture
def dock(qtbot):
    dock = QWidget()
    layout = dock_layout(dock)
    dock.combos = [QComboBox() for _ in range(12)]
    dock.spins = [QSpinBox() for _ in range(12)]
    for combo, spin in zip(dock.combos, dock.spins, strict=True):
        combo.addItems(["basicunet", "unet", "dynunet"])
        layout.addWidget(combo)
        layout.addWidget(spin)
    qtbot.addWidget(dock)
    dock.show()
    return dock


def test_a_short_dock_scrolls_and_keeps_its_controls_width(dock, qtbot) -> None:
    area = dock.findChild(QScrollArea)
    assert dock.minimumSizeHint().height() <= MIN_HEIGHT + 20  # not the controls' whole height
    assert dock.minimumSizeHint().width() >= dock.combos[0].minimumSizeHint().width()
    dock.resize(300, 200)
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 0)
    assert area.focusPolicy() == Qt.FocusPolicy.NoFocus  # no Tab stop of its own


def test_the_wheel_scrolls_the_dock_over_a_control_until_it_has_the_focus(dock, qtbot) -> None:
    area = dock.findChild(QScrollArea)
    dock.resize(300, 200)
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 0)
    combo, spin = dock.combos[0], dock.spins[0]
    for control in (combo, spin):  # (a real wheel over a spin box reaches it from its line edit)
        before = area.verticalScrollBar().value()
        _wheel(control)
        assert combo.currentIndex() == 0 and spin.value() == 0  # the model or step count kept
        assert area.verticalScrollBar().value() > before  # the dock scrolled instead
    dock.activateWindow()
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo)
    assert combo.currentIndex() == 1  # a control with the focus takes the wheel
