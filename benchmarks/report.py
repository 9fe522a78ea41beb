"""What every benchmark script does with its results: the command that reproduces them, and a JSON file
naming the machine they were measured on."""

from __future__ import annotations

import json
import os
import platform
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
