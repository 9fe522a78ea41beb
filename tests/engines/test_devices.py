"""The device named on the command line: refused clearly before any work when it cannot be used."""

from __future__ import annotations

import pytest
import torch

import main
from engines.devices import torch_device
from engines.errors import InputError


@pytest.mark.parametrize(("gpu", "name", "expected"), [(False, "auto", "cpu"), (True, "auto", "cuda"),
                                                       (False, "cpu", "cpu"), (True, "cuda", "cuda")])
def test_names(monkeypatch, gpu: bool, name: str, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert torch_device(name) == expected


def test_cuda_without_a_gpu_and_unknown_names_are_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="sees no GPU"):
        torch_device("cuda")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        torch_device("gpu0")


def test_sr_on_cuda_without_a_gpu_says_so_and_not_that_the_weights_are_bad(monkeypatch, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 9, 3), np.float32), np.eye(4)), scan)
    code = main.run_command(["sr", str(scan), "--scale", "2", "--device", "cuda", "--out",
                             str(tmp_path / "o.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "sees no GPU" in err and "weights" not in err
