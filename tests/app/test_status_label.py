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
    assert label.minimumHeight() >= 2 * label.fontMetrics().lineSpacing()
    label.setText(LONG)
    assert dock.minimumSizeHint().width() == width
    assert label.toolTip() == LONG  # the whole text, where the label cuts an unbreakable run

    plain = QLabel()
    plain_dock = _dock(plain, qtbot)
    plain_width = plain_dock.minimumSizeHint().width()
    plain.setText(LONG)
    assert plain_dock.minimumSizeHint().width() > plain_width + 500  # what StatusLabel prevents
