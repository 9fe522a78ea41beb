"""The live metric plot: curves per panel grow point by point; None is skipped; clear keeps the panels."""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDockWidget, QLabel, QMainWindow

from app.plot import MetricPlot

pytestmark = pytest.mark.qt


def test_curves_grow_and_clear(qtbot) -> None:
    plot = MetricPlot(("loss", "Dice"), limits={"Dice": (0.0, 1.0)})
    qtbot.addWidget(plot)
    for step, loss, dice in ((1, 2.0, 0.1), (2, 1.5, None), (3, 1.0, 0.4)):
        plot.add("loss", "train", step, loss)
        plot.add("Dice", "grey matter", step, dice)
        plot.add("Dice", "white matter", step, 0.5)
    assert plot.series("loss", "train") == ([1.0, 2.0, 3.0], [2.0, 1.5, 1.0])
    assert plot.series("Dice", "grey matter") == ([1.0, 3.0], [0.1, 0.4])
    assert plot.axes["loss"].get_ylim()[1] >= 2.0  # autoscaled to the data
    assert plot.axes["Dice"].get_ylim() == (0.0, 1.0)  # fixed
    legend = plot.axes["Dice"].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["grey matter", "white matter"]
    plot.draw()
    renderer = plot.get_renderer()
    box, axes = legend.get_window_extent(renderer), plot.axes["Dice"].get_window_extent(renderer)
    assert axes.x1 - 20 < box.x1 <= axes.x1 and axes.y1 - 20 < box.y1 <= axes.y1  # upper right, the default
    first_colour = plot.axes["loss"].lines[0].get_color()
    plot.clear()
    assert plot.series("loss", "train") == ([], []) and not plot.axes["loss"].lines
    assert plot.axes["Dice"].get_ylabel() == "Dice" and plot.axes["Dice"].get_legend() is None
    plot.add("loss", "train", 1, 2.0)
    assert plot.axes["loss"].lines[0].get_color() == first_colour  # colours start over
    with pytest.raises(KeyError):
        plot.add("accuracy", "train", 1, 0.5)


def test_the_legend_sits_in_the_corner_asked_for(qtbot) -> None:
    plot = MetricPlot(("Dice",), legend_loc="lower right")
    qtbot.addWidget(plot)
    for name in ("grey matter", "white matter"):
        plot.add("Dice", name, 1, 0.5)
    plot.draw()
    renderer = plot.get_renderer()
    box = plot.axes["Dice"].get_legend().get_window_extent(renderer)
    axes = plot.axes["Dice"].get_window_extent(renderer)
    assert axes.x1 - 20 < box.x1 <= axes.x1 and axes.y0 <= box.y0 < axes.y0 + 20


def test_a_canvas_behind_another_tab_draws_when_raised(qtbot, monkeypatch) -> None:
    """A canvas in a dock behind another dock's tab (still "visible" to Qt) does not draw: each draw holds
    the GUI thread. Raised, it draws before it paints; then it draws as it is asked."""
    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QLabel("viewer"))
    plot = MetricPlot(("loss",))
    docks = [QDockWidget("plot"), QDockWidget("other")]
    docks[0].setWidget(plot)
    docks[1].setWidget(QLabel("another dock"))
    for dock in docks:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.tabifyDockWidget(*docks)
    docks[1].raise_()
    window.show()
    qtbot.waitExposed(window)
    draws = []
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda self: draws.append(self))
    plot.add("loss", "train", 1, 2.0)
    qtbot.wait(200)
    assert plot.isVisible() and not plot.seen and draws == []
    docks[0].raise_()
    qtbot.waitUntil(lambda: len(draws) == 1, timeout=5_000)
    plot.add("loss", "train", 2, 1.0)
    qtbot.waitUntil(lambda: len(draws) == 2, timeout=5_000)
    qtbot.wait(100)
    assert len(draws) == 2
