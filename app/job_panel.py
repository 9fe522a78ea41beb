"""A panel for one background job at a time: progress bar, status with ETA, log pane and Cancel.

Docks that run `app.jobs.Job`s put a `JobPanel` in their layout, start jobs through it and listen to its
`job_event` and `finished` signals for what is theirs (metrics, results). The panel itself shows progress
events (step/total and the time left), "log" and "error" event messages and every other output line. A dock
closed while its job runs stops the job.
"""

from __future__ import annotations

from qtpy.QtCore import QTimer, Signal
from qtpy.QtGui import QFontDatabase, QHideEvent
from qtpy.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.jobs import Job
from app.status_label import StatusLabel

# Lines the log pane keeps (older ones scroll away).
LOG_LINES = 2000
# Jobs of docks closed while they ran, kept until they end (`JobPanel._check_removed`).
_STOPPING: set[Job] = set()


def format_eta(seconds: float | None) -> str:
    """Time left in words: "about 45 s left", "about 3 min 20 s left", "" when unknown."""
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"about {seconds} s left"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"about {minutes} min {seconds:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min left"


class JobPanel(QWidget):
    """Runs one `Job` at a time and shows its progress, ETA and log; Cancel sends SIGTERM.

    Signals
    -------
    job_event(dict)
        Every JSON event of the job (after the panel has shown it).
    finished(int, str)
        Exit code and stderr tail, as `Job.finished`.
    """

    job_event = Signal(dict)
    finished = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.cancelled = False  # cancel() was asked for the current job
        self.removed = False  # its dock was closed (taken out of the window): start nothing more
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setEnabled(False)  # always shown: a layout jump would repaint the whole window
        self.status = StatusLabel(lines=2)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the job: it finishes its current step (a training job saves a "
                                      "checkpoint) and exits")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setPlaceholderText("Job output appears here.")

        row = QHBoxLayout()
        row.addWidget(self.progress_bar, stretch=1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.log_view)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, argv: list[str], *, message: str = "Starting…", env: dict[str, str] | None = None
              ) -> Job | None:
        """Start `argv` (see `app.jobs.main_command`) in the background, with `env` added; return its Job.
        None once the dock was closed (its inputs may have been written after): nothing is started."""
        if self.removed:
            return None
        if self.running:
            raise RuntimeError("a job is already running in this panel")
        self.job = Job(argv, env=env, parent=self)
        self.cancelled = False
        self.job.job_event.connect(self._on_event)
        self.job.log.connect(self.append_log)
        self.job.finished.connect(self._on_finished)
        self.progress_bar.setValue(0)
        self.progress_bar.setEnabled(True)
        self.cancel_button.setEnabled(True)
        self.status.setText(message)
        self.log_view.clear()
        self.append_log("$ " + " ".join(argv))
        self.job.start()
        return self.job

    def cancel(self) -> None:
        """Ask the running job to stop (SIGTERM: it ends its step, a training job checkpoints, and exits)."""
        if self.running:
            self.cancelled = True
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling (the job finishes its current step first)…")

    def append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def hideEvent(self, event: QHideEvent) -> None:
        """A dock closed with its × is taken out of the window (napari's remove_dock_widget), not deleted:
        its job would run on with nothing to show it or stop it, so it is stopped (a training job
        checkpoints first), and `removed` tells its dock to start none. Hidden behind another tab, or with
        the window, it runs on."""
        super().hideEvent(event)
        QTimer.singleShot(0, self._check_removed)  # napari unparents the dock before it removes it

    def _check_removed(self) -> None:
        widget = self.parentWidget()
        while widget is not None and not isinstance(widget, (QDockWidget, QMainWindow)):
            widget = widget.parentWidget()
        if widget is not None:
            return
        self.removed = True
        if self.running:
            self.cancel()
            # The dock may now be collected, and the Job with it (its child), whose QProcess would kill
            # the job in the middle of its checkpoint: the Job lives on by itself until the job ends.
            job = self.job
            job.setParent(None)
            _STOPPING.add(job)
            job.finished.connect(lambda *_: _STOPPING.discard(job))

    def _on_event(self, event: dict) -> None:
        kind = event["event"]
        if kind == "progress":
            step, total = int(event["step"]), int(event["total"])
            self.progress_bar.setValue(int(100 * step / max(total, 1)))
            eta = format_eta(event.get("eta_s"))
            if self.cancel_button.isEnabled():  # keep "Cancelling…" once asked
                text = f"{event.get('stage', 'step')} {step}/{total}"
                self.status.setText(f"{text}, {eta}" if eta else text)
        elif kind in ("log", "error"):
            self.append_log(("error: " if kind == "error" else "") + str(event.get("message", "")))
        self.job_event.emit(event)

    def _on_finished(self, code: int, stderr_tail: str) -> None:
        self.cancel_button.setEnabled(False)
        self.progress_bar.setEnabled(False)
        self.append_log(f"[exit code {code}]")
        self.finished.emit(code, stderr_tail)
