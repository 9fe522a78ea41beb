"""Matplotlib in docks: a canvas that draws only while shown, and a live plot of job metrics (stacked panels
sharing the step axis, any number of named curves each)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget


class Canvas(FigureCanvasQTAgg):
    """A matplotlib canvas that draws only while it can be seen, and catches up when it is.

    A dock behind another tab still counts as visible to Qt and gets resize and redraw requests; each full
    draw holds the GUI thread for 20-150 ms (570 ms for the first one at start-up, while the demo's worker
    held the GIL) for a picture nobody sees. Whether any of the canvas is on screen is checked when a draw
    is due, a turn of the event loop after the request; a canvas brought into view draws before it paints.
    """

    def __init__(self, figure: Figure) -> None:
        self._stale = False
        super().__init__(figure)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._draw_if_seen)

    @property
    def seen(self) -> bool:
        """Some of the canvas is on screen (not hidden, not covered by another dock's tab)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def draw_idle(self) -> None:
        self._stale = True
        if hasattr(self, "_timer"):  # FigureCanvasQT.__init__ may ask before there is one
            self._timer.start()

    def _draw_if_seen(self) -> None:
        if self._stale and self.seen:
            self._stale = False
            super().draw_idle()

    def paintEvent(self, event: object) -> None:
        if self._stale:  # brought into view (a tab raised, the window shown) with a draw still owed
            self._stale = False
            self.draw()
        super().paintEvent(event)


class MetricPlot(Canvas):
    """Curves that grow point by point (e.g. loss and Dice per class against the training step).

    Parameters
    ----------
    panels : names of the stacked panels, top to bottom; each is its y-axis label
    xlabel : label of the shared x axis
    limits : optional fixed y range per panel name (e.g. {"Dice": (0, 1)}); others autoscale
    legend_loc : where a panel with several curves has its legend (a matplotlib corner: the one the curves
        are expected to leave free, e.g. "lower right" for scores that rise)
    """

    def __init__(self, panels: Sequence[str], *, xlabel: str = "step",
                 limits: dict[str, tuple[float, float]] | None = None, legend_loc: str = "upper right",
                 parent: QWidget | None = None) -> None:
        self.figure = Figure(figsize=(4, 1.4 * len(panels) + 0.4))
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(int(110 * len(panels)) + 40)
        self._limits = dict(limits or {})
        self._legend_loc = legend_loc
        axes = self.figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        self.axes = dict(zip(panels, axes, strict=True))
        self._data: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        self._lines: dict[tuple[str, str], object] = {}
        for name, ax in self.axes.items():
            ax.set_ylabel(name)
            ax.grid(True, alpha=0.3)
            if name in self._limits:
                ax.set_ylim(*self._limits[name])
        axes[-1].set_xlabel(xlabel)

    def clear(self) -> None:
        """Remove every curve, keep the panels."""
        for line in self._lines.values():
            line.remove()
        for ax in self.axes.values():
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            ax.set_prop_cycle(None)  # the next job's curves take the same colours as the last one's
        self._data.clear()
        self._lines.clear()
        self.draw_idle()

    def resizeEvent(self, event: object) -> None:
        # Lay out once per resize: tight_layout on every draw would double the cost of a live update.
        super().resizeEvent(event)
        self.figure.tight_layout()
        self.draw_idle()

    def add(self, panel: str, series: str, x: float, y: float | None) -> None:
        """Append (x, y) to curve `series` of `panel`; a None y (no value this step) is skipped."""
        if y is None:
            return
        ax = self.axes[panel]
        key = (panel, series)
        xs, ys = self._data.setdefault(key, ([], []))
        xs.append(float(x))
        ys.append(float(y))
        if key in self._lines:
            self._lines[key].set_data(xs, ys)
        else:
            (self._lines[key],) = ax.plot(xs, ys, lw=1.2, label=series)
            if sum(1 for p, _ in self._lines if p == panel) > 1:
                # A fixed corner: "best" rescans every point on each draw (65-135 ms at 2000 steps against
                # 55 ms for the whole figure without it), and beside the axes it took most of a dock's width.
                ax.legend(fontsize="x-small", loc=self._legend_loc, framealpha=0.6)
        ax.relim()
        ax.autoscale_view(scaley=panel not in self._limits)
        self.draw_idle()

    def series(self, panel: str, series: str) -> tuple[list[float], list[float]]:
        """The (x, y) points of one curve so far (empty lists if it has none)."""
        xs, ys = self._data.get((panel, series), ([], []))
        return list(xs), list(ys)
