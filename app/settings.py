"""Tessera's small persistent settings: the recent-files list, as JSON in the user's config folder.

The folder is `platformdirs.user_config_dir("tessera")`, or `$TESSERA_CONFIG_DIR` when set (tests point it
at a temporary folder). A missing or unreadable file means "no settings yet", never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs

CONFIG_ENV = "TESSERA_CONFIG_DIR"
SETTINGS_FILE = "settings.json"
MAX_RECENT = 12


def config_dir() -> Path:
    """The folder holding Tessera's settings (not created here)."""
    return Path(os.environ.get(CONFIG_ENV) or platformdirs.user_config_dir("tessera", appauthor=False))


def _load() -> dict:
    try:
        settings = json.loads((config_dir() / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _save(settings: dict) -> None:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (SETTINGS_FILE + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1), encoding="utf-8")
    tmp.replace(folder / SETTINGS_FILE)  # atomic: a crash never leaves a half-written file


def recent_files() -> list[str]:
    """Recently opened paths, newest first (as they were opened: absolute)."""
    recent = _load().get("recent", [])
    return [p for p in recent if isinstance(p, str)][:MAX_RECENT] if isinstance(recent, list) else []


def add_recent(path: str | os.PathLike) -> list[str]:
    """Put `path` (made absolute) first in the recent list, dropping duplicates and the oldest; return it."""
    entry = os.path.abspath(os.fspath(path))
    recent = [entry] + [p for p in recent_files() if p != entry]
    settings = _load()
    settings["recent"] = recent[:MAX_RECENT]
    _save(settings)
    return settings["recent"]


def remove_recent(path: str | os.PathLike) -> list[str]:
    """Drop `path` from the recent list (e.g. it no longer exists); return the list."""
    entry = os.path.abspath(os.fspath(path))
    settings = _load()
    settings["recent"] = [p for p in recent_files() if p != entry]
    _save(settings)
    return settings["recent"]
