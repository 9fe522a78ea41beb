"""Background jobs in a separate process, read as JSON-lines events (DESIGN §3).

A job is a command line (usually `python main.py SUBCOMMAND ...`) whose stdout carries one JSON event per
line. `Job` runs it in a QProcess so the GUI thread only ever handles short signals: each event is parsed and
re-emitted, other lines go to the log, and the end reports the exit code and the tail of stderr.
Cancel sends SIGTERM (the job checkpoints and exits 0) and kills the process if it is still alive 10 s later.
On POSIX a job runs at a lower CPU priority (`nice`), so that the GUI thread gets a core first when it has
work (benchmarks/gui_stalls.py compares both: with two ranks on two cores the gain is small).
"""

from __future__ import annotations

import collections
import os
import shutil
import sys
import time
from pathlib import Path

from qtpy.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engines.events import parse

MAIN_PY = Path(__file__).resolve().parent.parent / "main.py"
KILL_AFTER_MS = 10_000
JOB_NICENESS = 10  # added to the job's niceness (POSIX `nice`): the GUI comes first, the job uses the rest
STDERR_TAIL_LINES = 40


def main_command(*args: str) -> list[str]:
    """The argv that runs `python main.py *args` with this interpreter."""
    return [sys.executable, str(MAIN_PY), *args]


def eta_seconds(elapsed_s: float, step: int, total: int) -> float | None:
    """Remaining time assuming steps keep their average pace so far; None before the first step."""
    if step <= 0 or total <= 0:
        return None
    return max(0.0, elapsed_s * (total - step) / step)


class Job(QObject):
    """One background process.

    Signals
    -------
    job_event(dict)
        (Not `event`: that name is QObject.event, which Qt calls for every QEvent.)
        Each JSON event line; progress events gain "eta_s" (seconds left, or None).
    log(str)
        Every other line of stdout and every line of stderr.
    finished(int, str)
        Exit code (-1 if it crashed or could not start) and the last lines of stderr.
    """

    job_event = Signal(dict)
    log = Signal(str)
    finished = Signal(int, str)

    def __init__(self, argv: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.argv = list(argv)
        self._process = QProcess(self)
        if cwd:
            self._process.setWorkingDirectory(cwd)
        process_env = QProcessEnvironment.systemEnvironment()
        process_env.insert("PYTHONUNBUFFERED", "1")
        for key, value in (env or {}).items():
            process_env.insert(key, value)
        self._process.setProcessEnvironment(process_env)
        self._process.readyReadStandardOutput.connect(self._read_stdout)
        self._process.readyReadStandardError.connect(self._read_stderr)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._stdout_buffer = b""
        self._stderr_buffer = b""
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._started_at = 0.0
        self._done = False
        self._cancelled = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.setInterval(KILL_AFTER_MS)
        self._kill_timer.timeout.connect(self._process.kill)

    @property
    def running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        self._started_at = time.monotonic()
        # `nice` replaces itself with the command, so the process id stays the job's; a program that is not
        # there is started bare, for QProcess to report it could not start.
        nice = shutil.which("nice") if self._program_found() else None
        argv = [nice, "-n", str(JOB_NICENESS), *self.argv] if nice else self.argv
        self._process.start(argv[0], argv[1:])

    def _program_found(self) -> bool:
        """Whether the program exists where the job looks for it: its working directory and PATH."""
        program, cwd = self.argv[0], self._process.workingDirectory()
        if cwd and os.sep in program and not os.path.isabs(program):
            program = os.path.join(cwd, program)
        return shutil.which(program, path=self._process.processEnvironment().value("PATH")) is not None

    def cancel(self) -> None:
        """Ask the job to stop (SIGTERM: it checkpoints and exits); kill it if it ignores that for 10 s."""
        if self.running:
            self._cancelled = True
            self._process.terminate()
            self._kill_timer.start()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the process ends (for tests and shutdown, never from a GUI callback)."""
        return self._process.waitForFinished(msecs)

    def _lines(self, buffer: bytes, chunk: bytes) -> tuple[list[str], bytes]:
        buffer += chunk
        *complete, rest = buffer.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete], rest

    def _read_stdout(self) -> None:
        chunk = bytes(self._process.readAllStandardOutput())
        lines, self._stdout_buffer = self._lines(self._stdout_buffer, chunk)
        for line in lines:
            self._handle_stdout_line(line)

    def _handle_stdout_line(self, line: str) -> None:
        event = parse(line)
        if event is None:
            if line.strip():
                self.log.emit(line)
            return
        if event["event"] == "progress":
            elapsed = time.monotonic() - self._started_at
            event["eta_s"] = eta_seconds(elapsed, int(event["step"]), int(event["total"]))
        self.job_event.emit(event)

    def _read_stderr(self) -> None:
        chunk = bytes(self._process.readAllStandardError())
        lines, self._stderr_buffer = self._lines(self._stderr_buffer, chunk)
        for line in lines:
            self._stderr_tail.append(line)
            self.log.emit(line)

    def _flush(self) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buffer:
            self._handle_stdout_line(self._stdout_buffer.decode("utf-8", "replace"))
        if self._stderr_buffer:
            self._stderr_tail.append(self._stderr_buffer.decode("utf-8", "replace"))
        self._stdout_buffer = self._stderr_buffer = b""

    def _finish(self, code: int) -> None:
        if self._done:
            return
        self._done = True
        self._kill_timer.stop()
        self.finished.emit(code, "\n".join(self._stderr_tail))

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._flush()
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        if crashed and not self._cancelled:  # killed by a signal (the OOM killer, a kill -9) or crashed:
            # the last stderr line is what a dock shows, and "exit code -1" would say nothing
            self._stderr_tail.append("the job's process was killed or crashed before it finished "
                                     "(no exit status; out of memory is a common cause)")
        self._finish(-1 if crashed else int(exit_code))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr_tail.append(f"could not start {self.argv[0]}: {self._process.errorString()}")
            self._finish(-1)
