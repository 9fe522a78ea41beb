"""Where a training checkpoint lives and which step it holds, without torch (the Train 3D dock reads it).

OUT/checkpoint/ holds model.safetensors, optimizer.pt and checkpoint.json; while a new one is swapped in
(engines.partition.checkpoint) the previous one is OUT/checkpoint.old/ for a moment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

WEIGHTS, OPTIMIZER, STATE = "model.safetensors", "optimizer.pt", "checkpoint.json"


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """The checkpoint folder of a training output folder."""
    return Path(out) / "checkpoint"


def checkpoint_in(out: str | os.PathLike) -> Path | None:
    """The folder of the checkpoint in `out`: OUT/checkpoint/, or the previous one if a crash interrupted
    the swap; None when there is none."""
    path = checkpoint_dir(out)
    for folder in (path, path.with_name("checkpoint.old")):
        if (folder / STATE).exists():
            return folder
    return None


def saved_state(out: str | os.PathLike) -> dict:
    """What the checkpoint in `out` says of itself ({"step": ..., "config": {...}}), or {} when there is
    none or it cannot be read (loading it says why: engines.partition.checkpoint)."""
    folder = checkpoint_in(out)
    try:
        state = json.loads((folder / STATE).read_text()) if folder is not None else {}
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def saved_step(out: str | os.PathLike) -> int | None:
    """The step of the checkpoint in `out`, or None when there is none or it cannot be read."""
    step = saved_state(out).get("step")
    return step if is_whole(step) else None


def is_whole(value: object, low: int = 0) -> bool:
    """Whether a value read from JSON is a whole number (not a bool) of at least `low`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low
