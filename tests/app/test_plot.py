"""The live metric plot: curves per panel grow point by point; None is skipped; clear keeps the panels."""

from __future__ import annotations

import pytest

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
    renderer = plot.figure.canvas.get_renderer()
    # beside the panel, never over a curve
    assert legend.get_window_extent(renderer).x0 >= plot.axes["Dice"].get_window_extent(renderer).x1
    first_colour = plot.axes["loss"].lines[0].get_color()
    plot.clear()
    assert plot.series("loss", "train") == ([], []) and not plot.axes["loss"].lines
    assert plot.axes["Dice"].get_ylabel() == "Dice" and plot.axes["Dice"].get_legend() is None
    plot.add("loss", "train", 1, 2.0)
    assert plot.axes["loss"].lines[0].get_color() == first_colour  # colours start over
    with pytest.raises(KeyError):
        plot.add("accuracy", "train", 1, 0.5)
