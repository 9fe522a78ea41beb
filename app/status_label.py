"""A label for text that changes while the app runs: status lines, layer and file names, measurements.

A plain QLabel asks for the width of its text. When a job's first line of memory figures or a long file name
arrives, the dock grows wider: napari's canvas is resized and redrawn whole (up to 150 ms of the GUI thread
in software OpenGL), and every control in the dock moves under the user's pointer.
"""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget


class StatusLabel(QLabel):
    """A word-wrapped label that never asks for more width than its dock has, at least `lines` lines tall.

    An unbreakable run of text longer than the dock (a file path) is cut at its edge; the whole text is the
    tooltip.
    """

    def __init__(self, text: str = "", *, lines: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(lines * self.fontMetrics().lineSpacing())  # a steady height too
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
