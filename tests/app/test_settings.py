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
    assert len(told) == 2 and told[1].endswith("kept as settings.json.unreadable.1, starting with no recent "
                                               "files nor remembered forms")


def test_a_dicom_folder_entry_remembers_its_series_and_old_plain_paths_still_read(tmp_path):
    folder, scan = str(tmp_path / "study"), str(tmp_path / "scan.nii")
    folder_dir = settings.config_dir()
    folder_dir.mkdir(parents=True, exist_ok=True)
    # a settings file from before series were remembered: plain paths (and junk, skipped)
    old = {"recent": [scan, folder, 3, {"no": "path"}]}
    (folder_dir / settings.SETTINGS_FILE).write_text(json.dumps(old))
    assert settings.recent_entries() == [settings.RecentEntry(scan), settings.RecentEntry(folder)]
    settings.add_recent(folder)  # what app.viewer records after any open
    settings.add_recent(folder, series_uid="1.2.3", series="MR 'T2 axial'")  # the dock: the series it showed
    # the series entry replaces the folder's plain one (which meant "the largest")
    assert settings.recent_entries() == [settings.RecentEntry(folder, "1.2.3", "MR 'T2 axial'"),
                                         settings.RecentEntry(scan)]
    # another series of the same folder is an entry of its own, and so is the folder without one
    settings.add_recent(folder, series_uid="4.5.6", series="CT 'abdomen'")
    settings.add_recent(folder)
    assert [(e.path, e.series_uid) for e in settings.recent_entries()] == [
        (folder, None), (folder, "4.5.6"), (folder, "1.2.3"), (scan, None)]
    # the same series again moves to the top (and again replaces the plain entry)
    settings.add_recent(folder, series_uid="1.2.3", series="MR 'T2 axial'")
    assert [(e.path, e.series_uid) for e in settings.recent_entries()] == [
        (folder, "1.2.3"), (folder, "4.5.6"), (scan, None)]
    on_disk = json.loads((folder_dir / settings.SETTINGS_FILE).read_text())["recent"]
    assert on_disk[0] == {"path": folder, "series_uid": "1.2.3", "series": "MR 'T2 axial'"}
    assert on_disk[-1] == scan  # entries without a series stay plain paths, as older Tessera wrote them
    assert settings.recent_files() == [folder, folder, scan]
    settings.remove_recent(folder)  # the folder is gone: every series of it goes
    assert settings.recent_entries() == [settings.RecentEntry(scan)]


def test_forms_are_kept_per_dock_beside_the_recent_list() -> None:
    settings.add_recent("/data/a.nii.gz")
    settings.save_form("Train 3D", {"steps": 17, "model": "unet"})
    settings.save_form("Other", {"x": 1})
    settings.save_form("Train 3D", {"steps": 18})
    assert settings.form_values("Train 3D") == {"steps": 18} and settings.form_values("Other") == {"x": 1}
    assert settings.form_values("never saved") == {}
    assert settings.recent_files() == ["/data/a.nii.gz"]
