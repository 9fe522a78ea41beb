"""The torch device a command runs on, named by the user as cpu, cuda or auto."""

from __future__ import annotations

from engines.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def torch_device(name: str) -> str:
    """"cpu" or "cuda" for `name` ("auto": CUDA when torch sees a GPU); InputError for another name or for
    cuda without a GPU, before any work (the alternative is an error deep in torch, e.g. while loading
    weights, that seems to blame them)."""
    import torch

    if name not in DEVICES:
        raise InputError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda, but torch sees no GPU here (use cpu or auto)")
    return "cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name
