"""Training checkpoints: weights as safetensors, optimizer state via torch.save (read weights_only), step
and the job's configuration as JSON - never a pickle of anything a user could hand us.

A checkpoint is the folder OUT/checkpoint/ holding model.safetensors, optimizer.pt and checkpoint.json.
It is written as OUT/checkpoint.tmp/ and then swapped in, so a crash never leaves a mixed checkpoint.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from engines.errors import InputError
from engines.files import created_mode
from engines.partition.checkpoint_files import OPTIMIZER, STATE, WEIGHTS, checkpoint_dir, checkpoint_in


@dataclass
class Checkpoint:
    """What a checkpoint folder holds."""

    path: Path
    step: int
    config: dict[str, Any]
    optimizer: dict[str, Any] | None

    def load_weights(self, model: nn.Module) -> None:
        """Set `model`'s weights (plain or partitioned) from the checkpoint. A tensor the network holds under
        several names (DynUNet's skip layers reuse its blocks) is stored once and set under every name."""
        try:
            load_model(model, self.path / WEIGHTS)
        except SafetensorError as exc:  # the header read in `load_checkpoint`, the rest damaged
            raise InputError(f"the checkpoint's weights cannot be read: {exc}", self.path) from exc
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"the checkpoint's weights do not fit this network: {exc}", self.path) from exc


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
    save_model(model, str(tmp / WEIGHTS), metadata={"step": str(step)})  # aliases once; copied off the GPU
    os.chmod(tmp / WEIGHTS, created_mode())  # safetensors writes it readable by the owner only
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
    """Read OUT/checkpoint/ (or the previous one, if a crash interrupted the swap); the weights are set into a
    network by `Checkpoint.load_weights`, the optimizer state is read onto `map_location`.

    Raises
    ------
    InputError
        No checkpoint, or one whose files disagree or cannot be read.
    """
    path = checkpoint_in(out)
    if path is None:
        raise InputError("no checkpoint here to resume from or predict with", checkpoint_dir(out))
    try:
        state = json.loads((path / STATE).read_text())
        with safe_open(path / WEIGHTS, framework="pt") as weights:  # a readable header, read now
            weights.keys()
        optimizer = None
        if (path / OPTIMIZER).exists():
            optimizer = torch.load(path / OPTIMIZER, map_location=map_location, weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError, SafetensorError, pickle.UnpicklingError) as exc:
        raise InputError(f"the checkpoint cannot be read: {exc}", path) from exc
    return Checkpoint(path, int(state["step"]), state["config"], optimizer)
