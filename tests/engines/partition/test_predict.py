"""Whole-volume prediction from a training folder's checkpoint, and the labels NIfTI it writes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch

from engines.partition.checkpoint import load_checkpoint, save_checkpoint
from engines.partition.models import build_model
from engines.partition.predict import predict_sliding_window, predict_volume


def _trained_folder(tmp_path, crop):
    torch.manual_seed(0)
    model = build_model("unet", out_channels=3, width=2)
    config = {"model": "unet", "width": 2, "in_channels": 1, "classes": 3, "crop": list(crop), "mean": 5.0,
              "std": 2.0, "multiple": [8, 8, 8]}
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, model, optimizer, 7, config)
    return model.eval()


def test_checkpoint_round_trips_weights_optimizer_and_step(tmp_path):
    model = _trained_folder(tmp_path, (16, 16, 8))
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.step == 7 and checkpoint.config["model"] == "unet"
    assert all(torch.equal(checkpoint.weights[k], v) for k, v in model.state_dict().items())
    assert checkpoint.optimizer["param_groups"][0]["lr"] == 1e-3


def test_one_window_covering_the_volume_equals_a_plain_forward(tmp_path):
    model = _trained_folder(tmp_path, (24, 16, 16))
    image = np.random.default_rng(0).normal(5, 2, (20, 13, 16)).astype(np.float32)
    labels = predict_sliding_window(tmp_path, image)
    padded = np.zeros((24, 16, 16), np.float32) - 2.5  # (0 - mean) / std, as pad_to_multiple fills
    padded[:20, :13, :16] = (image - 5) / 2
    with torch.no_grad():
        expected = model(torch.from_numpy(padded)[None, None]).argmax(1)[0, :20, :13, :16].numpy()
    assert labels.shape == image.shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)


def test_predict_volume_writes_labels_on_the_image_grid(tmp_path):
    _trained_folder(tmp_path, (16, 16, 8))
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    affine[:3, 3] = [-20, 4, 9]
    image_path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).normal(5, 2, (18, 20, 9)).astype(np.float32), affine),
             str(image_path))
    written = predict_volume(tmp_path, str(image_path), tmp_path / "labels.nii.gz")
    result = nib.load(written)
    assert result.shape == (18, 20, 9)
    np.testing.assert_allclose(result.affine, affine)
    assert set(np.unique(np.asarray(result.dataobj))) <= {0, 1, 2}


def test_predict_seg_cli_labels_another_scan_and_never_writes_over_it(tmp_path):
    import main

    _trained_folder(tmp_path, (16, 16, 8))
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    image_path = tmp_path / "other.nii"
    nib.save(nib.Nifti1Image(np.random.default_rng(2).normal(5, 2, (10, 12, 7)).astype(np.float32), affine),
             str(image_path))
    before = image_path.read_bytes()
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(image_path),
                      "--out", str(image_path)]) == 2
    assert image_path.read_bytes() == before
    out = tmp_path / "labels.nii.gz"
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(image_path), "--out", str(out),
                      "--device", "cpu"]) == 0
    result = nib.load(out)
    assert result.shape == (10, 12, 7)
    np.testing.assert_allclose(result.affine, affine)
    assert main.main(["predict-seg", "--run", str(tmp_path / "nowhere"), "--image", str(image_path),
                      "--out", str(out)]) == 2
