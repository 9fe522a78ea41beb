"""What every benchmark script does with its results: the command that reproduces them, and a JSON file
naming the machine they were measured on; and how a Qt benchmark runs its measuring child process."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reproduces this run of benchmarks/`script`, as the README quotes it."""
    return " ".join([f".venv/bin/python benchmarks/{script}", *(argv or sys.argv[1:])])


def write_results(path: Path, document: dict, **machine: object) -> None:
    """Write `document` as JSON to `path` (its folder created), with the machine it ran on: cores and
    platform, and whatever `machine` adds (a load average, the Python version)."""
    document = {**document, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **machine}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    print(f"results: {path}")


def run_gui_child(script: Path, args: list[str], timeout_s: float) -> object:
    """Run `python script --child *args` in a fresh process, under xvfb-run when there is no display, and
    return the JSON value it printed last on a line of its own (a Qt benchmark measures in a child, so its
    memory and event loop are its own)."""
    cmd = [sys.executable, str(script), "--child", *args]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                         cwd=Path(__file__).resolve().parent.parent)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("{", "["))]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])
