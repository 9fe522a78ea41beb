"""Steps run one per turn of the Qt event loop, so that work which must happen in the GUI thread does not
hold it for the sum of its parts.

napari spends 100-500 ms of the GUI thread on each layer it adds or removes (layer controls, shaders,
thumbnails, numba on a first labels layer); three in one callback froze the window for about a second.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

from qtpy.QtCore import QObject, QTimer


class Turns(QObject):
    """Runs a sequence of steps, the first at once and each next one in a later turn of the event loop.

    A new `run` drops the steps still waiting (they served an older request): a caller whose steps undo
    earlier ones keeps what is left to undo itself. The steps stop when the parent is deleted (the timer is
    the parent's child); a dock that is only closed (napari keeps the widget) finishes what it started.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._steps: collections.deque[Callable[[], object]] = collections.deque()
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        """Steps are still waiting."""
        return bool(self._steps)

    def run(self, steps: Iterable[Callable[[], object]]) -> None:
        """Run `steps` in order, one per turn, in place of any still waiting."""
        self._steps = collections.deque(steps)
        self._next()

    def _next(self) -> None:
        self._timer.stop()
        if not self._steps:
            return
        try:
            self._steps.popleft()()
        finally:
            if self._steps:  # started after the step, so timers that fell due during it go first
                self._timer.start()
