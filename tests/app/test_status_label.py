"""StatusLabel: changing text never widens its dock (that resizes and redraws napari's whole canvas)."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from app.status_label import StatusLabel

pytestmark = pytest.mark.qt

LONG = "Peak memory per rank: " + ", ".join(f"{r}: 12,345 MB" for r in range(16)) + " /a/very/" + "x" * 300


def _dock(label: QLabel, qtbot) -> QWidget:
    dock = QWidget()
    qtbot.addWidget(dock)
    layout = QVBoxLayout(dock)
    layout.addWidget(QPushButton("Start"))
    layout.addWidget(label)
    return dock


def test_long_text_does_not_widen_the_dock(qtbot) -> None:
    label = StatusLabel(lines=2)
    dock = _dock(label, qtbot)
    width = dock.minimumSizeHint().width()
    assert label.minimumSizeHint().height() >= 2 * label.fontMetrics().lineSpacing()
    label.setText(LONG)
    assert dock.minimumSizeHint().width() == width
    dock.resize(300, 200)
    dock.show()
    qtbot.waitExposed(dock)
    assert label.toolTip() == LONG  # the whole text, where the label cuts an unbreakable run
    label.setText("step 3/20, about 1 min left")
    assert label.toolTip() == ""  # all of it is on show

    plain = QLabel()
    plain_dock = _dock(plain, qtbot)
    plain_width = plain_dock.minimumSizeHint().width()
    plain.setText(LONG)
    assert plain_dock.minimumSizeHint().width() > plain_width + 500  # what StatusLabel prevents


def test_a_label_keeps_the_height_of_its_own_lines(qtbot) -> None:
    """Several lines of a summary all stay readable: the minimum height covers them, not just `lines`."""
    label = StatusLabel("\n".join(f"line {i}" for i in range(7)))
    dock = _dock(label, qtbot)
    assert label.minimumSizeHint().height() >= 7 * label.fontMetrics().lineSpacing()
    assert dock.minimumSizeHint().height() >= 7 * label.fontMetrics().lineSpacing()
