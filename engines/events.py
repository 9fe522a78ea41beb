"""JSON-lines events that background jobs print on stdout (DESIGN §3).

One JSON object per line: {"event": "start"|"progress"|"metric"|"checkpoint"|"log"|"done"|"error", ...}.
The GUI's job runner parses them; the same lines are what a user sees running the job in a terminal.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

EVENTS = ("start", "progress", "metric", "checkpoint", "log", "done", "error")


def emit(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Print one event line and flush, so a reader sees it at once."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; expected one of {EVENTS}")
    if event == "progress" and not {"step", "total"} <= fields.keys():
        raise ValueError("a progress event needs 'step' and 'total'")
    if event == "error" and "message" not in fields:
        raise ValueError("an error event needs 'message'")
    line = json.dumps(_finite({"event": event, "time": round(time.time(), 3), **fields}), allow_nan=False)
    out = stream or sys.stdout
    try:
        out.write(line + "\n")
        out.flush()
    except BrokenPipeError:
        # The reader is gone (say, the GUI killed the launcher): keep working - the job still checkpoints -
        # and send what stdout gets from now on to /dev/null, so no later write or the exit flush fails.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def parse(line: str) -> dict | None:
    """The event in one line of a job's stdout, or None for a line that is not an event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and obj.get("event") in EVENTS else None


class StopRequest:
    """Set when the job is asked to stop (SIGTERM or SIGINT); the job checkpoints and exits 0.

    A plain flag, not a threading.Event: signals come in bursts (a launcher's death sends its ranks SIGTERM
    from the kernel and from torchrun's agent at once), a handler can interrupt itself, and a handler
    interrupted inside Event.set took the Event's lock again and waited on itself forever (a rank hung so).
    """

    def __init__(self) -> None:
        self._requested = False  # set from the handler and read by the job: one store, no lock
        self._callbacks: list[Callable[[], None]] = []

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        return self

    def on_signal(self, callback: Callable[[], None]) -> None:
        """Also call `callback` from the signal handler (in the main thread, between two bytecodes of
        whatever it was running: it must be safe to run there), each time a signal comes."""
        self._callbacks.append(callback)

    def _on_signal(self, *_: object) -> None:
        self._requested = True
        for callback in self._callbacks:
            callback()

    def set(self) -> None:
        self._requested = True

    def __bool__(self) -> bool:
        return self._requested


def _finite(obj: Any) -> Any:
    """`obj` with arrays as lists and NaN or infinities as None (null): strict JSON readers refuse NaN, and a
    diverging loss must not make the job's events unreadable."""
    if hasattr(obj, "tolist"):  # numpy and torch arrays and scalars
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj
