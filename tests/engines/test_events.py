"""JSON-lines job events (DESIGN §3): what a job prints is what the GUI parses."""

from __future__ import annotations

import io
import json
import os
import signal

import numpy as np
import pytest

from engines.events import StopRequest, emit, parse


def test_emit_writes_one_parsable_line_per_event():
    out = io.StringIO()
    emit("progress", stream=out, step=3, total=10)
    emit("metric", stream=out, step=3, dice=np.array([0.5, 0.25]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (parse(line) for line in lines)
    assert first["event"] == "progress" and first["step"] == 3 and first["total"] == 10
    assert second["dice"] == [0.5, 0.25]
    assert all(isinstance(json.loads(line)["time"], float) for line in lines)


def test_a_diverging_metric_stays_strict_json():
    """NaN is not JSON: strict readers (browsers, jq, most languages) refuse a line that holds it."""
    out = io.StringIO()
    emit("metric", stream=out, step=1, loss=float("nan"), dice=[0.5, None, np.float32("inf")],
         peak=np.array([np.nan, 2.0]))

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    event = json.loads(out.getvalue(), parse_constant=refuse)
    assert event["loss"] is None and event["dice"] == [0.5, None, None] and event["peak"] == [None, 2.0]


@pytest.mark.parametrize(
    ("event", "fields", "match"),
    [("bogus", {}, "unknown event"), ("progress", {"step": 1}, "step"), ("error", {}, "message")],
)
def test_emit_refuses_events_that_break_the_contract(event, fields, match):
    with pytest.raises(ValueError, match=match):
        emit(event, stream=io.StringIO(), **fields)


@pytest.mark.parametrize("line", ["", "plain text", "{not json", '{"event": "other"}', "[1, 2]"])
def test_parse_ignores_lines_that_are_not_events(line):
    assert parse(line) is None


def test_stop_request_is_set_by_sigterm():
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop = StopRequest().install()
        assert not stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_the_stop_handler_takes_no_lock(monkeypatch):
    """Signals come in bursts (a launcher's death: SIGTERM from the kernel and from torchrun's agent), and a
    handler interrupted inside a lock it took waits on itself for ever: a rank hung so, inside Event.set,
    with its checkpoint half written. The handler, its callbacks' re-entry included, takes no lock."""
    import threading

    def no_lock(*_):
        raise AssertionError("the signal handler took a lock")

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop = StopRequest().install()
        seen = []

        def again() -> None:
            seen.append(bool(stop))
            if len(seen) == 1:
                os.kill(os.getpid(), signal.SIGTERM)

        stop.on_signal(again)
        monkeypatch.setattr(threading.Condition, "__enter__", no_lock)
        os.kill(os.getpid(), signal.SIGTERM)  # its callback sends another: the handler runs inside itself
        monkeypatch.undo()
        assert stop and seen == [True, True]
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_a_job_whose_reader_is_gone_keeps_working_and_exits_cleanly(tmp_path):
    """A killed launcher takes the pipe's read end with it: the job must still reach its checkpoint."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    marker = tmp_path / "reached"
    script = ("import sys\nfrom engines.events import emit\nsys.stdin.readline()\n"
              "for i in range(2000):\n    emit('log', message='x' * 100)\n"
              f"open({str(marker)!r}, 'w').write('done')\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes before the job writes
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert marker.read_text() == "done"
    assert b"Error" not in proc.stderr.read()
