"""Output folders of the commands that write several files: made, or refused naming the path (exit 2)."""

from __future__ import annotations

import os

import pytest

import main
from engines.errors import InputError
from engines.files import created_mode, make_output_folder


def test_an_output_folder_is_made_with_its_parents(tmp_path):
    folder = make_output_folder(tmp_path / "a" / "b")
    assert folder.is_dir()
    assert make_output_folder(folder) == folder  # an existing folder is fine


def test_a_file_or_an_unmakeable_folder_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(InputError, match="must be a folder"):
        make_output_folder(notes)
    assert notes.read_text() == "mine"
    with pytest.raises(InputError, match="cannot be made"):
        make_output_folder(notes / "inside")  # a file where a parent folder should be


@pytest.mark.parametrize("argv", [
    ["hsi-demo", "{out}"],
    ["sr-train", "--config", "resources/models/sr_light.json", "--out", "{out}"],
])
def test_commands_name_an_output_that_is_a_file(tmp_path, capsys, monkeypatch, argv):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    monkeypatch.chdir(os.path.dirname(main.__file__))  # the config path is relative to the repository
    assert main.main([a.format(out=out) for a in argv]) == 2
    assert f"{out}: the output must be a folder" in capsys.readouterr().err
    assert out.read_text() == "mine"


def test_outputs_get_the_mode_of_any_new_file(tmp_path):
    """mkstemp and safetensors create files readable by the owner only; outputs get the umask's mode."""
    import numpy as np
    import torch

    from engines.io import write_volume
    from engines.partition.checkpoint import save_checkpoint
    from engines.volume import Volume

    old = os.umask(0o027)
    try:
        assert created_mode() == 0o640
        write_volume(Volume(np.zeros((2, 3, 4), np.uint8), np.eye(4)), tmp_path / "labels.nii.gz")
        assert (tmp_path / "labels.nii.gz").stat().st_mode & 0o777 == 0o640
        (tmp_path / "labels.nii.gz").chmod(0o604)  # a file replaced keeps the mode its owner gave it
        write_volume(Volume(np.ones((2, 3, 4), np.uint8), np.eye(4)), tmp_path / "labels.nii.gz")
        assert (tmp_path / "labels.nii.gz").stat().st_mode & 0o777 == 0o604
        save_checkpoint(tmp_path, torch.nn.Linear(2, 2), None, 1, {})
        assert (tmp_path / "checkpoint" / "model.safetensors").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
