"""Tessera's small persistent settings, as JSON in the user's config folder: the recent-files list, and the
values each dock's form was last started with (`form_values`).

A recent entry is a path, stored as a plain string, or, for a DICOM folder, the path and the series shown
from it: ``{"path": ..., "series_uid": ..., "series": "MR 'T2 axial'"}`` (files written before series were
remembered hold plain strings only, and still read).

The folder is `platformdirs.user_config_dir("tessera")`, or `$TESSERA_CONFIG_DIR` when set (tests point it
at a temporary folder). A missing file means "no settings yet". An unreadable one is set aside (renamed
`settings.json.unreadable`, never overwritten unseen) and the user told; a folder that cannot be written
costs the recent list and the remembered forms, with a warning, never an open.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
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
                                         "starting with no recent files nor remembered forms")
            return
    except OSError:
        pass
    _warn_once(f"unreadable {path}",
               f"Tessera's settings file {path} is {why}: recent files and forms are not kept")


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
                                           f"({exc.strerror or exc}): recent files and forms are not kept")


@dataclass(frozen=True)
class RecentEntry:
    """One recent open: an absolute path and, for a DICOM folder, the series shown from it.

    `series_uid` is its SeriesInstanceUID (None: a file, or a folder opened without one, i.e. its largest
    series); `series` says which series it is in words (modality and description), for the Recent list.
    """

    path: str
    series_uid: str | None = None
    series: str = ""


def _entry(item: object) -> RecentEntry | None:
    """A stored entry read back (a plain path, or a dict with a series); None for anything malformed."""
    if isinstance(item, str):
        return RecentEntry(item)
    if isinstance(item, dict) and isinstance(item.get("path"), str):
        uid, series = item.get("series_uid"), item.get("series")
        return RecentEntry(item["path"], uid if isinstance(uid, str) and uid else None,
                           series if isinstance(series, str) else "")
    return None


def _stored(entry: RecentEntry) -> str | dict:
    # no series: a plain path, as older Tessera wrote (and reads) it
    if entry.series_uid is None:
        return entry.path
    return {"path": entry.path, "series_uid": entry.series_uid, "series": entry.series}


def _save_recent(entries: list[RecentEntry]) -> None:
    settings = _load()
    settings["recent"] = [_stored(e) for e in entries]
    _save(settings)


def recent_entries() -> list[RecentEntry]:
    """Recent opens, newest first, with the DICOM series shown from a folder where one was recorded."""
    recent = _load().get("recent", [])
    entries = [_entry(item) for item in recent] if isinstance(recent, list) else []
    return [e for e in entries if e is not None][:MAX_RECENT]


def recent_files() -> list[str]:
    """The paths of `recent_entries` (newest first, absolute; a folder appears once per series kept)."""
    return [e.path for e in recent_entries()]


def add_recent(path: str | os.PathLike, *, series_uid: str | None = None, series: str = "") -> list[str]:
    """Put `path` (made absolute), with the DICOM series `series_uid` shown from it if given, first in the
    recent list, dropping the oldest; return the list's paths.

    An entry for the same path and series is replaced. Each series of one folder is an entry of its own
    (a study's T1, T2 and CT are each reopened directly); an entry with a series also replaces the folder's
    entry without one, which would open its largest series.
    """
    entry = RecentEntry(os.path.abspath(os.fspath(path)), series_uid or None, series)
    kept = [e for e in recent_entries()
            if e.path != entry.path or e.series_uid not in (entry.series_uid, None)]
    entries = [entry, *kept][:MAX_RECENT]
    _save_recent(entries)
    return [e.path for e in entries]


def remove_recent(path: str | os.PathLike) -> list[str]:
    """Drop every entry for `path`, any series (e.g. it no longer exists); return the list's paths."""
    entry = os.path.abspath(os.fspath(path))
    kept = [e for e in recent_entries() if e.path != entry]
    _save_recent(kept)
    return [e.path for e in kept]


def form_values(form: str) -> dict:
    """The values `form` (a dock's name) was last started with (`save_form`); {} when none were kept. They
    are as stored: the dock checks each before it shows it."""
    forms = _load().get("forms")
    values = forms.get(form) if isinstance(forms, dict) else None
    return values if isinstance(values, dict) else {}


def save_form(form: str, values: dict) -> None:
    """Keep a dock's form values (JSON types) for the next time the dock is made."""
    settings = _load()
    forms = settings.get("forms")
    settings["forms"] = {**(forms if isinstance(forms, dict) else {}), form: values}
    _save(settings)
