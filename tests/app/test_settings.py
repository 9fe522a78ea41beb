"""Recent files persist as JSON in the config folder (a temporary one in tests, see tests/conftest.py)."""

from __future__ import annotations

import json
import os

import pytest

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


@pytest.mark.parametrize("content", ["{not json", '["a", "list"]', "[" * 100_000 + "]" * 100_000])
def test_an_unreadable_settings_file_is_set_aside_and_told_not_overwritten(content, monkeypatch):
    told = []
    monkeypatch.setattr(settings, "notify_warning", told.append)
    monkeypatch.setattr(settings, "_warned", set())
    folder = settings.config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / settings.SETTINGS_FILE).write_text(content)
    assert settings.recent_files() == []
    settings.add_recent("/data/x.nii")
    assert settings.recent_files() == ["/data/x.nii"]
    assert (folder / (settings.SETTINGS_FILE + ".unreadable")).read_text() == content
    assert len(told) == 1 and "kept as settings.json.unreadable" in told[0]


def test_an_unwritable_config_folder_costs_the_recent_list_with_one_warning(tmp_path, monkeypatch):
    told = []
    monkeypatch.setattr(settings, "notify_warning", told.append)
    monkeypatch.setattr(settings, "_warned", set())
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "file" / "cfg"))  # under a file: cannot be made
    assert settings.add_recent("/data/x.nii") == ["/data/x.nii"]
    assert settings.remove_recent("/data/x.nii") == []
    assert len(told) == 1 and "cannot save its settings" in told[0]


def test_a_second_unreadable_file_never_replaces_the_first_set_aside(monkeypatch):
    told = []
    monkeypatch.setattr(settings, "notify_warning", told.append)
    monkeypatch.setattr(settings, "_warned", set())
    folder = settings.config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for content in ("{first", "{second"):
        (folder / settings.SETTINGS_FILE).write_text(content)
        assert settings.recent_files() == []
    assert (folder / "settings.json.unreadable").read_text() == "{first"
    assert (folder / "settings.json.unreadable.1").read_text() == "{second"
    assert len(told) == 2 and told[1].endswith("kept as settings.json.unreadable.1, starting with an empty "
                                               "recent-files list")
