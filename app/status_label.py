"""A label for text that changes while the app runs: status lines, layer and file names, measurements.

A plain QLabel asks for the width of its text. When a job's first line of memory figures or a long file name
arrives, the dock grows wider: napari's canvas is resized and redrawn whole (up to 150 ms of the GUI thread
in software OpenGL), and every control in the dock moves under the user's pointer.
"""

from __future__ import annotations

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget


class StatusLabel(QLabel):
    """A word-wrapped label that never asks for more width than its dock has, at least `lines` lines tall
    (and as tall as its own lines).

    A run of text with no space in it that is wider than the label (a file path) is cut at its edge; the
    whole text is then the tooltip.
    """

    def __init__(self, text: str = "", *, lines: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lines = lines
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def minimumSizeHint(self) -> QSize:
        lines = self._lines * self.fontMetrics().lineSpacing()
        return QSize(0, max(super().minimumSizeHint().height(), lines))

    def setText(self, text: str) -> None:
        super().setText(text)
        self._update_tooltip()

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)
        self._update_tooltip()

    def _update_tooltip(self) -> None:
        words = self.text().split()
        longest = max((self.fontMetrics().horizontalAdvance(word) for word in words), default=0)
        self.setToolTip(self.text() if longest > self.contentsRect().width() else "")
