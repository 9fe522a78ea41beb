"""The job runner: events parsed from a real child process, ETA, cancel by SIGTERM, crash reporting."""

from __future__ import annotations

import os
import sys

import pytest

from app.jobs import JOB_NICENESS, Job, eta_seconds, main_command

pytestmark = pytest.mark.qt

def _job(script, *args):
    from app.jobs import MAIN_PY

    return Job([sys.executable, str(script), *args], env={"PYTHONPATH": str(MAIN_PY.parent)})


def test_eta_is_proportional_to_remaining_steps():
    assert eta_seconds(10.0, 2, 10) == pytest.approx(40.0)
    assert eta_seconds(10.0, 10, 10) == 0.0
    assert eta_seconds(1.0, 0, 10) is None


def test_main_command_runs_main_py_with_this_python():
    argv = main_command("info", "x.nii")
    assert argv[0] == sys.executable and argv[1].endswith("main.py") and argv[2:] == ["info", "x.nii"]


def test_events_logs_and_exit_code(qtbot, job_script):
    job = _job(job_script, "4")
    events, logs = [], []
    job.job_event.connect(events.append)
    job.log.connect(logs.append)
    with qtbot.waitSignal(job.finished, timeout=20_000) as done:
        job.start()
    assert done.args[0] == 0
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4]
    assert all("eta_s" in e for e in progress) and progress[-1]["eta_s"] == 0.0
    assert "a plain log line" in logs


def test_cancel_sends_sigterm_and_job_checkpoints(qtbot, job_script):
    job = _job(job_script, "1000")
    events = []
    job.job_event.connect(events.append)
    job.start()
    qtbot.waitUntil(lambda: any(e["event"] == "progress" for e in events), timeout=20_000)
    with qtbot.waitSignal(job.finished, timeout=15_000) as done:
        job.cancel()
    assert done.args[0] == 0
    assert events[-1]["event"] == "checkpoint"


def test_crash_reports_stderr_tail(qtbot, tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('boom: bad thing', file=sys.stderr)\nsys.exit(3)\n")
    job = _job(script)
    with qtbot.waitSignal(job.finished, timeout=20_000) as done:
        job.start()
    code, tail = done.args
    assert code == 3 and "boom: bad thing" in tail


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX niceness")
def test_a_job_runs_at_a_lower_cpu_priority_than_the_gui(qtbot, tmp_path):
    script = tmp_path / "nice.py"
    script.write_text("import os\nprint('niceness', os.getpriority(os.PRIO_PROCESS, 0), os.getpid())\n")
    job = _job(script)
    lines = []
    job.log.connect(lines.append)
    with qtbot.waitSignal(job.finished, timeout=20_000) as done:
        job.start()
        pid = job._process.processId()
    assert done.args[0] == 0
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert f"niceness {min(own + JOB_NICENESS, 19)} {pid}" in lines  # and the process is the job itself


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX niceness")
def test_a_relative_program_is_looked_for_in_the_jobs_folder(qtbot, tmp_path, monkeypatch):
    job_dir, gui_dir = tmp_path / "job", tmp_path / "gui"
    for folder in (job_dir / "bin", gui_dir / "elsewhere"):
        folder.mkdir(parents=True)
    script = job_dir / "bin" / "here.sh"
    script.write_text("#!/bin/sh\necho niceness $(cut -d' ' -f19 /proc/$$/stat)\n")
    script.chmod(0o755)
    (gui_dir / "elsewhere" / "there.sh").write_text("#!/bin/sh\necho wrong\n")
    (gui_dir / "elsewhere" / "there.sh").chmod(0o755)
    monkeypatch.chdir(gui_dir)
    job = Job(["bin/here.sh"], cwd=str(job_dir))
    lines = []
    job.log.connect(lines.append)
    with qtbot.waitSignal(job.finished, timeout=20_000) as done:
        job.start()
    niceness = min(os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS, 19)
    assert done.args[0] == 0 and lines == [f"niceness {niceness}"]
    missing = Job(["elsewhere/there.sh"], cwd=str(job_dir))  # in the GUI's folder, not the job's
    with qtbot.waitSignal(missing.finished, timeout=20_000) as done:
        missing.start()
    assert done.args[0] == -1 and "could not start" in done.args[1]


def test_missing_program_reports_failure(qtbot, tmp_path):
    job = Job([str(tmp_path / "no-such-program")])
    with qtbot.waitSignal(job.finished, timeout=10_000) as done:
        job.start()
    assert done.args[0] == -1 and "could not start" in done.args[1]


def test_a_killed_job_says_so_in_its_last_line(qtbot, tmp_path):
    """kill -9 (or the OOM killer) leaves no exit status: the last line still says what happened."""
    script = tmp_path / "killed.py"
    script.write_text("import os, signal, sys\nprint('working', file=sys.stderr, flush=True)\n"
                      "os.kill(os.getpid(), signal.SIGKILL)\n")
    job = _job(script)
    with qtbot.waitSignal(job.finished, timeout=20_000) as done:
        job.start()
    code, tail = done.args
    assert code == -1 and tail.splitlines()[-1].startswith("the job's process was killed or crashed")
