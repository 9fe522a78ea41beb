"""The job panel: progress and ETA from a real child process, its log, cancel by SIGTERM."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest
from qtpy.QtWidgets import QVBoxLayout, QWidget

from app.job_panel import JobPanel, format_eta
from app.jobs import MAIN_PY

pytestmark = pytest.mark.qt

@pytest.mark.parametrize(("seconds", "text"), [
    (None, ""), (0.4, "about 0 s left"), (44.6, "about 45 s left"), (200, "about 3 min 20 s left"),
    (3 * 3600 + 5 * 60 + 9, "about 3 h 05 min left"),
])
def test_format_eta(seconds, text) -> None:
    assert format_eta(seconds) == text


def _start(panel: JobPanel, script, steps: str):
    return panel.start([sys.executable, str(script), steps], message="Going…",
                       env={"PYTHONPATH": str(MAIN_PY.parent)})


def test_progress_eta_and_log(qtbot, job_script) -> None:
    panel = JobPanel()
    qtbot.addWidget(panel)
    events = []
    panel.job_event.connect(events.append)
    with qtbot.waitSignal(panel.finished, timeout=20_000) as done:
        _start(panel, job_script, "4")
        assert panel.status.text() == "Going…" and panel.cancel_button.isEnabled()
        with pytest.raises(RuntimeError, match="already running"):
            _start(panel, job_script, "4")
    assert done.args[0] == 0
    assert [e["event"] for e in events if e["event"] == "progress"] == ["progress"] * 4
    assert panel.progress_bar.value() == 100 and panel.status.text() == "step 4/4, about 0 s left"
    log = panel.log_view.toPlainText().splitlines()
    assert log[0].startswith("$ ") and log[-1] == "[exit code 0]"
    assert "warming up" in log and "a plain log line" in log
    assert not panel.cancel_button.isEnabled() and not panel.running


def test_cancel_stops_the_job_which_checkpoints(qtbot, job_script) -> None:
    panel = JobPanel()
    qtbot.addWidget(panel)
    events = []
    panel.job_event.connect(events.append)
    _start(panel, job_script, "1000")
    qtbot.waitUntil(lambda: panel.progress_bar.value() > 0 or any(e["event"] == "progress" for e in events),
                    timeout=20_000)
    with qtbot.waitSignal(panel.finished, timeout=15_000) as done:
        panel.cancel()
        assert panel.status.text().startswith("Cancelling")
    assert done.args[0] == 0 and events[-1]["event"] == "checkpoint"
    assert panel.status.text().startswith("Cancelling")  # later progress did not overwrite it


def test_a_dock_closed_while_its_job_runs_stops_the_job(make_napari_viewer, qtbot, job_script) -> None:
    viewer = make_napari_viewer(show=True)
    dock = QWidget()
    panel = JobPanel()
    QVBoxLayout(dock).addWidget(panel)
    dock_widget = viewer.window.add_dock_widget(dock, name="A job")
    _start(panel, job_script, "1000")
    qtbot.waitUntil(lambda: panel.progress_bar.value() > 0, timeout=20_000)
    dock_widget.hide()  # hidden (behind another tab, or from the menu): the job runs on
    qtbot.wait(200)
    assert panel.running and not panel.cancelled
    dock_widget.show()
    with qtbot.waitSignal(panel.finished, timeout=15_000) as done:
        viewer.window.remove_dock_widget(dock)  # what the dock's x does: the widget lives on, unparented
    assert panel.cancelled and done.args[0] == 0  # SIGTERM: the job checkpointed and exited
    assert "[exit code 0]" in panel.log_view.toPlainText()


def test_a_stopping_job_outlives_its_closed_dock_and_a_dock_closed_early_starts_nothing(
        make_napari_viewer, qtbot, job_script) -> None:
    """Once closed, nothing holds a dock: collected with its Job's QProcess, the job would be killed in the
    middle of its checkpoint. The Job lives on by itself until the job ends; a Start whose inputs come in
    after the dock was closed starts nothing."""
    viewer = make_napari_viewer(show=True)
    dock = QWidget()
    panel = JobPanel()
    QVBoxLayout(dock).addWidget(panel)
    viewer.window.add_dock_widget(dock, name="A job")
    job = _start(panel, job_script, "1000")
    started = []
    job.job_event.connect(lambda event: started.append(event))
    qtbot.waitUntil(lambda: any(e["event"] == "progress" for e in started), timeout=20_000)
    codes = []
    job.finished.connect(lambda code, _: codes.append(code))
    viewer.window.remove_dock_widget(dock)
    closed = weakref.ref(panel)
    qtbot.waitUntil(lambda: closed().removed, timeout=5_000)  # seen on a later turn of the event loop
    assert panel.start([sys.executable, "-c", "pass"]) is None
    del dock, panel, job
    gc.collect()
    assert closed() is None  # the closed dock and its panel are gone
    qtbot.waitUntil(lambda: bool(codes), timeout=15_000)
    assert codes == [0]  # ended by its SIGTERM handler (checkpoint saved), not killed with the panel
