"""Training checkpoints: weights as safetensors, optimizer state via torch.save (read weights_only), step
and the job's configuration as JSON - never a pickle of anything a user could hand us.

A checkpoint is the folder OUT/checkpoint/ holding model.safetensors, optimizer.pt and checkpoint.json.
It is written as OUT/checkpoint.tmp/ and then swapped in, so a crash never leaves a mixed checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engines.errors import InputError

WEIGHTS, OPTIMIZER, STATE = "model.safetensors", "optimizer.pt", "checkpoint.json"


@dataclass
class Checkpoint:
    """What a checkpoint folder holds."""

    path: Path
    step: int
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """The checkpoint folder of a training output folder."""
    return Path(out) / "checkpoint"


def save_checkpoint(out: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    step: int,
                    config: dict[str, Any]) -> Path:
    """Write OUT/checkpoint/ atomically and return its path.

    Parameters
    ----------
    model : nn.Module
        Plain or partitioned (their state_dict keys are the same).
    config : dict
        JSON-serialisable description of the job (model name, width, classes, normalisation, ...).
    """
    final = checkpoint_dir(out)
    tmp, old = final.with_name("checkpoint.tmp"), final.with_name("checkpoint.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / WEIGHTS), metadata={"step": str(step)})
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
    (tmp / STATE).write_text(json.dumps({"step": step, "config": config}, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(out: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read OUT/checkpoint/ (or the previous one, if a crash interrupted the swap).

    Raises
    ------
    InputError
        No checkpoint, or one whose files disagree or cannot be read.
    """
    path = checkpoint_dir(out)
    if not (path / STATE).exists() and (path.with_name("checkpoint.old") / STATE).exists():
        path = path.with_name("checkpoint.old")
    if not (path / STATE).exists():
        raise InputError("no checkpoint here to resume from or predict with", path)
    try:
        state = json.loads((path / STATE).read_text())
        weights = load_file(str(path / WEIGHTS), device=str(map_location))
        optimizer = None
        if (path / OPTIMIZER).exists():
            optimizer = torch.load(path / OPTIMIZER, map_location=map_location, weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"the checkpoint cannot be read: {exc}", path) from exc
    return Checkpoint(path, int(state["step"]), state["config"], weights, optimizer)
