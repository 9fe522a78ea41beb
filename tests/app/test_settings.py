"""Recent files persist as JSON in the config folder (a temporary one in tests, see tests/conftest.py)."""

from __future__ import annotations

import json
import os

from app import settings


def test_config_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "cfg"))
    assert settings.config_dir() == tmp_path / "cfg"
    assert settings.recent_files() == []  # no file yet is not an error


def test_recent_files_newest_first_without_duplicates(tmp_path):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b_dicom"
    settings.add_recent(a)
    settings.add_recent(b)
    settings.add_recent(a)
    assert settings.recent_files() == [str(a), str(b)]
    on_disk = json.loads((settings.config_dir() / settings.SETTINGS_FILE).read_text())
    assert on_disk["recent"] == [str(a), str(b)]
    settings.remove_recent(a)
    assert settings.recent_files() == [str(b)]


def test_recent_paths_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings.add_recent("scan.nii")
    assert settings.recent_files() == [os.path.join(str(tmp_path), "scan.nii")]


def test_recent_list_is_capped():
    for i in range(settings.MAX_RECENT + 5):
        settings.add_recent(f"/data/scan{i}.nii")
    recent = settings.recent_files()
    assert len(recent) == settings.MAX_RECENT
    assert recent[0] == f"/data/scan{settings.MAX_RECENT + 4}.nii"


def test_a_corrupt_settings_file_reads_as_empty_and_is_replaced():
    folder = settings.config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / settings.SETTINGS_FILE).write_text("{not json")
    assert settings.recent_files() == []
    settings.add_recent("/data/x.nii")
    assert settings.recent_files() == ["/data/x.nii"]
