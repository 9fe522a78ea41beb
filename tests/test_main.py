"""main.py's CLI contract (DESIGN §4): bad input exits 2 with a message naming the file, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(main.__file__).resolve().parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_every_subcommand_has_help_with_an_example():
    for name in main.COMMANDS:
        result = _run(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "example" in result.stdout.lower(), name


def test_gui_help_lists_the_subcommands():
    result = _run("--help")
    assert result.returncode == 0
    for name in main.COMMANDS:
        assert name in result.stdout


def test_missing_file_exits_2_naming_it_without_traceback(tmp_path):
    missing = tmp_path / "no_such_scan.nii.gz"
    result = _run("info", str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "meant"), [(["inof", "scan.nii.gz"], "info"),
                                             (["inof", "scan.nii.gz", "--json"], "info"),  # its options too
                                             (["partition-chek", "--ranks", "2"], "partition-check")])
def test_a_mistyped_subcommand_is_named_not_opened_as_a_file(argv, meant):
    result = _run(*argv)
    assert result.returncode == 2
    assert f"unknown command {argv[0]!r}: did you mean {meant!r}?" in result.stderr


def test_a_bare_word_that_is_neither_a_command_nor_a_file_is_refused_before_the_window():
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "'frobnicate' is neither a command nor a file or folder here" in result.stderr


def test_without_a_display_the_window_is_not_started_and_says_how_to_get_one(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main.main(["--demo"]) == 1
    assert "no display to open the window on" in capsys.readouterr().err


def test_gui_arguments_that_are_not_mistyped_commands(monkeypatch, tmp_path):
    """Paths (with a folder or an extension) and '--' before a file named '-x' go to the workbench."""
    import widgets.workbench

    opened = []
    monkeypatch.setattr(widgets.workbench, "open_workbench", lambda **kw: opened.append(kw))
    monkeypatch.setattr("napari.run", lambda: None)
    monkeypatch.setattr("app.viewer.freeze_startup_objects", lambda: None)
    assert main.main(["data/info", "--demo", "scan.nii"]) == 0
    assert main.main(["--", "-scan.nii"]) == 0
    assert [kw["files"] for kw in opened] == [["data/info", "scan.nii"], ["-scan.nii"]]
    assert opened[0]["demo"] is True


def test_series_needs_exactly_one_folder(tmp_path, capsys):
    assert main.main(["scan.nii", "--series", "1.2.3"]) == 2
    assert "--series chooses the series of one DICOM folder; 0 folders given" in capsys.readouterr().err
