"""Shipped and trained super-resolution models: safetensors weights + JSON model card (DESIGN §6).

A model NAME is `resources/models/NAME.safetensors` with `NAME.json` beside it; the card's "architecture"
builds the network, so the hyper-parameters live in one place. Loading never unpickles.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engines.errors import InputError
from engines.files import created_mode
from engines.superres.model import MetaSR, count_parameters

MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"
CARD_FORMAT = "tessera-model-card/1"


def model_paths(name_or_path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, card) paths of a shipped model name ("sr_light") or of a .safetensors/.json path."""
    text = str(name_or_path)
    if text.endswith((".safetensors", ".json")) or os.sep in text or "/" in text:
        stem = Path(text)
        stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    return MODELS_DIR / f"{text}.safetensors", MODELS_DIR / f"{text}.json"


def shipped_models() -> list[str]:
    """Names of the super-resolution models in resources/models (those with a card and weights)."""
    return sorted(p.stem for p in MODELS_DIR.glob("sr_*.json") if p.with_suffix(".safetensors").exists())


def read_card(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The model card (dict) of a model name or path; InputError when it is missing or not a card."""
    _, card_path = model_paths(name_or_path)
    if not card_path.exists():
        known = ", ".join(shipped_models()) or "none"
        raise InputError(f"no model card here (shipped super-resolution models: {known})", card_path)
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON model card: {exc}", card_path) from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise InputError("the model card has no 'architecture'", card_path)
    return card


def build_model(architecture: dict[str, Any]) -> MetaSR:
    """A MetaSR from a card's "architecture" section (its "class" must be MetaSR).

    ValueError for anything else: not a dict, another class, an unknown or bad hyper-parameter.
    """
    if not isinstance(architecture, dict):
        raise ValueError(f"'architecture' must be a JSON object, got {type(architecture).__name__} "
                         f"{architecture!r}")
    arch = dict(architecture)
    cls = arch.pop("class", "MetaSR")
    if cls != "MetaSR":
        raise ValueError(f"this engine builds MetaSR models, the card asks for {cls!r}")
    known = set(inspect.signature(MetaSR).parameters)
    unknown = sorted(set(arch) - known)
    if unknown:
        raise ValueError(f"unknown architecture key(s) {unknown}; MetaSR takes {sorted(known)}")
    try:
        return MetaSR(**arch)
    except TypeError as exc:  # e.g. a string where a number belongs
        raise ValueError(str(exc)) from None


def architecture_of(model: MetaSR) -> dict[str, Any]:
    """The card's "architecture" section for `model`."""
    return {"class": "MetaSR", **model.config}


def save_model(model: MetaSR, weights_path: str | os.PathLike, card: dict[str, Any]) -> dict[str, Any]:
    """Write the weights (safetensors, float32) and the card beside them; return the card as written.

    The card gets the architecture, parameter count and the weights' SHA-256 filled in.
    """
    weights_path = Path(weights_path)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={"format": "pt"})
    os.chmod(weights_path, created_mode())  # safetensors makes it readable by the owner only
    card = {"format": CARD_FORMAT, "name": weights_path.stem, **card,
            "architecture": architecture_of(model), "parameters": count_parameters(model),
            "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest()}
    weights_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> MetaSR:
    """The model `name_or_path` (a shipped name or a .safetensors/.json path) in eval mode."""
    weights_path, card_path = model_paths(name_or_path)
    card = read_card(card_path)
    if not weights_path.exists():
        raise InputError("the weights file named by this model card is missing", weights_path)
    try:
        model = build_model(card["architecture"])
    except ValueError as exc:
        raise InputError(f"bad 'architecture' in the model card: {exc}", card_path) from None
    expected = card.get("weights_sha256")
    if expected is not None:  # cards written by save_model record it (every shipped one does)
        actual = hashlib.sha256(weights_path.read_bytes()).hexdigest()
        if actual != str(expected).lower():
            raise InputError(f"these weights are not the ones the model card {card_path} describes: their "
                             f"SHA-256 is {actual}, the card records {expected} (weights from another "
                             "model, or changed after the card was written)", weights_path)
    try:
        state = load_file(str(weights_path), device=str(device))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise InputError(f"weights do not fit the card's architecture or are not safetensors: {exc}",
                         weights_path) from None
    return model.to(device).eval()


@functools.lru_cache(maxsize=4)
def cached_model(name_or_path: str, device: str = "cpu") -> MetaSR:
    """`load_model` in channels-last layout (faster convolutions on CPU), kept in memory for repeated
    interactive calls (do not train the returned model)."""
    return load_model(name_or_path, device).to(memory_format=torch.channels_last)
