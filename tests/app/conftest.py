"""A tiny job script that follows DESIGN §3, for the job runner's and the job panel's tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# start, a log event, a plain line, then progress + metric per step; checkpoints and exits 0 on SIGTERM.
JOB = textwrap.dedent(
    """
    import sys, time
    from engines.events import emit, StopRequest
    stop = StopRequest().install()
    total = int(sys.argv[1])
    emit("start", total=total)
    emit("log", message="warming up")
    print("a plain log line", flush=True)
    for step in range(1, total + 1):
        if stop:
            emit("checkpoint", step=step - 1, path="ckpt")
            sys.exit(0)
        time.sleep(0.05)
        emit("progress", step=step, total=total)
        emit("metric", step=step, loss=1.0 / step)
    emit("done")
    """
)


@pytest.fixture
def job_script(tmp_path) -> Path:
    """The path of the JOB script (argument: the number of steps)."""
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return script
