"""Tessera's small persistent settings: the recent-files list, as JSON in the user's config folder.

The folder is `platformdirs.user_config_dir("tessera")`, or `$TESSERA_CONFIG_DIR` when set (tests point it
at a temporary folder). A missing file means "no settings yet". An unreadable one is set aside (renamed
`settings.json.unreadable`, never overwritten unseen) and the user told; a folder that cannot be written
costs the recent list, with a warning, never an open.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import platformdirs

from app.notify import notify_warning

CONFIG_ENV = "TESSERA_CONFIG_DIR"
SETTINGS_FILE = "settings.json"
MAX_RECENT = 12


def config_dir() -> Path:
    """The folder holding Tessera's settings (not created here)."""
    return Path(os.environ.get(CONFIG_ENV) or platformdirs.user_config_dir("tessera", appauthor=False))


log = logging.getLogger(__name__)
_warned: set[str] = set()  # each problem with the settings is told once per session


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        notify_warning(message)


def _load() -> dict:
    path = config_dir() / SETTINGS_FILE
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # no settings yet (saving says if it cannot be made)
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        _set_aside(path, f"unreadable ({type(exc).__name__})")
        return {}
    if not isinstance(settings, dict):
        _set_aside(path, "not a JSON object")
        return {}
    return settings


def _set_aside(path: Path, why: str) -> None:
    """Rename an unreadable settings file out of the way under a name not yet taken (so nothing is ever
    overwritten unseen, an earlier set-aside file included); tell."""
    try:
        if path.is_file():
            aside = path.with_name(SETTINGS_FILE + ".unreadable")
            n = 0
            while aside.exists() or aside.is_symlink():
                n += 1
                aside = path.with_name(f"{SETTINGS_FILE}.unreadable.{n}")
            path.rename(aside)
            _warn_once(f"aside {aside}", f"Tessera's settings file {path} was {why}: kept as {aside.name}, "
                                         "starting with an empty recent-files list")
            return
    except OSError:
        pass
    _warn_once(f"unreadable {path}", f"Tessera's settings file {path} is {why}: recent files are not kept")


def _save(settings: dict) -> None:
    """Write the settings atomically; an unwritable folder is told once and costs only the recent list."""
    folder = config_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a name of its own (two Tessera windows may save at once), then an atomic rename: a crash never
        # leaves a half-written file
        fd, tmp = tempfile.mkstemp(prefix=SETTINGS_FILE + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(settings, indent=1))
        os.replace(tmp, folder / SETTINGS_FILE)
    except OSError as exc:
        log.warning("could not save settings in %s: %s", folder, exc)
        _warn_once(f"unwritable {folder}", f"Tessera cannot save its settings in {folder} "
                                           f"({exc.strerror or exc}): recent files are not kept")


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
