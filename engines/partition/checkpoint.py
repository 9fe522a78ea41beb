"""Training checkpoints: weights as safetensors, optimizer state via torch.save (read weights_only), step
and the job's configuration as JSON - never a pickle of anything a user could hand us.

A checkpoint is the folder OUT/checkpoint/ holding model.safetensors, optimizer.pt and checkpoint.json.
It is written as OUT/checkpoint.tmp/ and then swapped in, so a crash never leaves a mixed checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from engines.errors import InputError
from engines.files import created_mode
from engines.partition.checkpoint_files import (
    OPTIMIZER,
    STATE,
    WEIGHTS,
    checkpoint_dir,
    checkpoint_in,
    is_whole,
)
from engines.partition.models import MODELS

FOREIGN = "not one train-seg wrote, or edited since"  # said of a checkpoint.json that is not as written


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
            raise InputError(f"the checkpoint's weights do not fit this network: {_gist(exc)}",
                             self.path) from exc

    def check_fits(self, model: nn.Module) -> None:
        """InputError unless the weights and the optimizer state fit `model` (trained with Adam), found
        before any rank starts: a rank would fail with torch's page-long key list."""
        self.load_weights(model)
        if self.optimizer is not None:
            try:
                torch.optim.Adam(model.parameters()).load_state_dict(self.optimizer)
            except (KeyError, ValueError, RuntimeError) as exc:
                raise InputError(f"the checkpoint's optimizer state does not fit this network: {_gist(exc)}",
                                 self.path) from exc


def _gist(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut to `limit` characters (torch lists every key that differs)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


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
    step = state.get("step") if isinstance(state, dict) else None
    if not is_whole(step, 0) or not isinstance(state.get("config"), dict):
        raise InputError(f"the checkpoint's {STATE} holds no step and configuration ({FOREIGN})", path)
    return Checkpoint(path, step, state["config"], optimizer)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# What a job's configuration holds, and what each value must be.
CONFIG_CHECKS: dict[str, Callable[[Any], bool]] = {
    "model": lambda v: v in MODELS,
    "width": lambda v: is_whole(v, 1),
    "in_channels": lambda v: is_whole(v, 1),
    "classes": lambda v: is_whole(v, 1),
    "values": lambda v: isinstance(v, list) and all(is_whole(x, 0) for x in v),
    "multiple": lambda v: isinstance(v, list) and len(v) == 3 and all(is_whole(x, 1) for x in v),
    "crop": lambda v: isinstance(v, list) and len(v) == 3 and all(is_whole(x, 1) for x in v),
    "mean": _finite,
    "std": lambda v: _finite(v) and v > 0,
    "affine": lambda v: (isinstance(v, list) and len(v) == 4
                         and all(isinstance(row, list) and len(row) == 4 and all(map(_finite, row))
                                 for row in v)),
}


def check_config(checkpoint: Checkpoint, required: Sequence[str]) -> dict[str, Any]:
    """The checkpoint's configuration, once the `required` keys are there and every known key holds what a
    job writes (InputError naming the folder otherwise: a hand-edited or foreign checkpoint.json)."""
    config = checkpoint.config
    for key in required:
        if key not in config:
            raise InputError(f"the checkpoint's {STATE} lacks {key!r} ({FOREIGN})", checkpoint.path)
    for key, valid in CONFIG_CHECKS.items():
        if key in config and not valid(config[key]):
            raise InputError(f"the checkpoint's {STATE} holds an unusable {key!r}: {config[key]!r}",
                             checkpoint.path)
    if "values" in config and "classes" in config and len(config["values"]) != config["classes"]:
        raise InputError(f"the checkpoint's {STATE} lists {len(config['values'])} label values for "
                         f"{config['classes']} classes", checkpoint.path)
    return config
