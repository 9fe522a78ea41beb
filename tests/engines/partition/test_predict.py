"""Whole-volume prediction from a training folder's checkpoint, and the labels NIfTI it writes."""

from __future__ import annotations

import copy
import itertools
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from engines.errors import InputError
from engines.partition import predict as predict_module
from engines.partition.checkpoint import load_checkpoint, save_checkpoint
from engines.partition.models import build_model
from engines.partition.predict import predict_sliding_window, predict_volume, window_tiling, write_labels

# The training image's grid: RAS, 0.8 x 0.8 x 1.5 mm voxels.
TRAINED_AFFINE = np.diag([0.8, 0.8, 1.5, 1.0])


def _trained_folder(tmp_path, crop):
    torch.manual_seed(0)
    model = build_model("unet", out_channels=3, width=2)
    config = {"model": "unet", "width": 2, "in_channels": 1, "classes": 3, "crop": list(crop), "mean": 5.0,
              "std": 2.0, "multiple": [8, 8, 8], "affine": TRAINED_AFFINE.tolist()}
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, model, optimizer, 7, config)
    return model.eval()


def test_checkpoint_round_trips_weights_optimizer_and_step(tmp_path):
    model = _trained_folder(tmp_path, (16, 16, 8))
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.step == 7 and checkpoint.config["model"] == "unet"
    fresh = build_model("unet", out_channels=3, width=2)
    checkpoint.load_weights(fresh)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    assert checkpoint.optimizer["param_groups"][0]["lr"] == 1e-3


@pytest.mark.parametrize("name", ["basicunet", "unet", "dynunet"])
def test_every_model_checkpoints_and_reloads(tmp_path, name):
    """DynUNet holds its blocks under two names (skip_layers reuses them): saved once, set under both."""
    torch.manual_seed(1)
    model = build_model(name, out_channels=2, width=2)
    save_checkpoint(tmp_path, model, None, 1, {"model": name})
    fresh = build_model(name, out_channels=2, width=2)
    load_checkpoint(tmp_path).load_weights(fresh)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    with pytest.raises(InputError, match="do not fit"):
        load_checkpoint(tmp_path).load_weights(build_model(name, out_channels=3, width=2))


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


def test_labels_past_255_are_not_wrapped(tmp_path):
    """A network of 300 classes (label ids as FreeSurfer's): uint16 labels, as its argmax gives them."""
    torch.manual_seed(0)
    model = build_model("unet", out_channels=300, width=2).eval()
    config = {"model": "unet", "width": 2, "in_channels": 1, "classes": 300, "crop": [16, 16, 8], "mean": 0.0,
              "std": 1.0, "multiple": [8, 8, 8]}
    save_checkpoint(tmp_path, model, None, 1, config)
    image = np.random.default_rng(0).normal(0, 1, (16, 16, 8)).astype(np.float32)
    labels = predict_sliding_window(tmp_path, image)
    with torch.no_grad():
        expected = model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()
    assert labels.dtype == np.uint16 and expected.max() > 255
    np.testing.assert_array_equal(labels, expected)
    write_labels(labels, np.eye(4), tmp_path / "labels.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "labels.nii.gz").dataobj), expected)


def test_predicted_classes_are_written_as_the_label_values_trained_on(tmp_path):
    """Class c of a network trained on labels 0, 7, 2035 is written as the c-th value, in a type for it."""
    model = _trained_folder(tmp_path, (16, 16, 8))
    checkpoint = load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, model, None, 7, {**checkpoint.config, "values": [0, 7, 2035]})
    image = np.random.default_rng(2).normal(5, 2, (16, 16, 8)).astype(np.float32)
    labels = predict_sliding_window(tmp_path, image)
    with torch.no_grad():
        classes = model(torch.from_numpy((image - 5) / 2)[None, None]).argmax(1)[0].numpy()
    assert labels.dtype == np.uint16 and len(np.unique(classes)) > 1
    np.testing.assert_array_equal(labels, np.array([0, 7, 2035])[classes])


def _window_starts(extent, roi, interval):
    """Where MONAI places its windows along an axis."""
    from monai.data.utils import dense_patch_slices

    return sorted({box[0].start for box in dense_patch_slices((extent,), (roi,), (interval,))})


def test_sliding_tiles_hold_every_window_of_the_voxels_they_label():
    """Against MONAI's own window placement, for every small axis, window and tile length: a tile's
    windows are the whole axis's windows inside it, every window covering a voxel of its part lies inside
    it, the parts cover the axis once, and no tile is longer than asked (or the shortest tile)."""
    for extent, roi in itertools.product(range(1, 41), range(1, 17)):
        if roi > extent:
            continue
        interval = predict_module.sliding_interval(extent, roi, 0.25)
        whole = _window_starts(extent, roi, interval)
        longest = predict_module.shortest_tile(extent, roi, interval)
        for length in (1, roi, 2 * roi, 3 * roi + 1, extent - 1, extent):
            tiles = predict_module.sliding_tiles(extent, roi, interval, length)
            assert [i for _, part in tiles for i in range(part.start, part.stop)] == list(range(extent))
            for tile, part in tiles:
                assert tile.start % interval == 0 and tile.stop - tile.start <= max(length, longest)

                def within(p, tile=tile, roi=roi):
                    return tile.start <= p and p + roi <= tile.stop

                own = _window_starts(tile.stop - tile.start, roi, interval)
                assert [tile.start + p for p in own] == [p for p in whole if within(p)]
                for voxel in range(part.start, part.stop):
                    assert all(within(p) for p in whole if p <= voxel < p + roi)


def test_tiles_fit_the_budget_and_recompute_few_windows():
    """512 x 512 x 400 voxels, 45 classes (17 GiB of output), 96^3 windows, 16 GiB: tiles along the first
    axis only, each within the budget, computing less than 1.25 x the windows of one pass."""
    shape, roi, classes, budget = (512, 512, 400), (96, 96, 96), 45, 16 << 30
    intervals = [predict_module.sliding_interval(n, r, 0.25) for n, r in zip(shape, roi, strict=True)]
    lengths = predict_module.tile_lengths(shape, roi, intervals, classes, budget)
    axes = [predict_module.sliding_tiles(*axis) for axis in zip(shape, roi, intervals, lengths, strict=True)]
    assert [len(tiles) for tiles in axes][1:] == [1, 1]
    for tile, _ in axes[0]:
        assert (tile.stop - tile.start) * 512 * 400 * (classes + 1) * 4 <= budget
    windows = sum(len(_window_starts(t.stop - t.start, 96, 72)) for t, _ in axes[0])
    assert windows < 1.25 * len(_window_starts(512, 96, 72))
    per_voxel = (4 + 1) * 4  # 4 classes' logits and MONAI's weight, float32
    whole = predict_module.tile_lengths(shape, roi, intervals, 4, 512 * 512 * 400 * per_voxel)
    assert whole == [512, 512, 400]
    shortest = predict_module.tile_lengths(shape, roi, intervals, 4, 1)
    assert shortest == [96 + 2 * 72] * 3  # as short as tiles go: the output then passes the budget


def test_a_volume_labelled_in_tiles_gets_the_labels_of_one_pass(tmp_path, monkeypatch):
    """Output past half the free memory is computed tile by tile, on every axis here; the same labels."""
    from monai import inferers

    _trained_folder(tmp_path, (16, 16, 8))
    image = np.random.default_rng(4).normal(5, 2, (88, 70, 40)).astype(np.float32)
    whole = predict_sliding_window(tmp_path, image)
    calls = []
    real = inferers.sliding_window_inference
    monkeypatch.setattr(inferers, "sliding_window_inference", lambda x, *a, **k: calls.append(x.shape) or
                        real(x, *a, **k))
    monkeypatch.setattr(predict_module, "_free_bytes", lambda device: 2)  # room for one byte of output
    tiled = predict_sliding_window(tmp_path, image)
    assert all(n < whole_n for shape in calls for n, whole_n in zip(shape[2:], (88, 72, 40), strict=True))
    assert len(np.unique(whole)) == 3
    np.testing.assert_array_equal(tiled, whole)


@pytest.mark.parametrize("available, budget", [(0, 0), (None, predict_module.UNKNOWN_FREE_BYTES // 2),
                                               (6 << 30, 3 << 30)])
def test_the_tile_budget_is_half_the_free_memory_none_at_a_limit_and_a_guess_when_unknown(
        tmp_path, monkeypatch, available, budget):
    """A memory limit reached (0 bytes left) is not "unknown": the smallest tiles, not a 1 GiB guess."""
    _trained_folder(tmp_path, (16, 16, 8))
    monkeypatch.setattr(predict_module, "available_memory_bytes", lambda: available)
    budgets = []
    real = predict_module.tile_lengths
    monkeypatch.setattr(predict_module, "tile_lengths", lambda *args: budgets.append(args[-1]) or real(*args))
    predict_sliding_window(tmp_path, np.zeros((20, 20, 10), np.float32))
    assert budgets == [budget]


def test_predict_volume_writes_labels_on_the_image_grid(tmp_path):
    _trained_folder(tmp_path, (16, 16, 8))
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    affine[:3, 3] = [-20, 4, 9]
    image_path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).normal(5, 2, (18, 20, 9)).astype(np.float32), affine),
             str(image_path))
    written, warnings = predict_volume(tmp_path, str(image_path), tmp_path / "labels.nii.gz")
    result = nib.load(written)
    assert warnings == []
    assert result.shape == (18, 20, 9)
    np.testing.assert_allclose(result.affine, affine)
    assert set(np.unique(np.asarray(result.dataobj))) <= {0, 1, 2}


def test_a_scan_stored_in_another_axis_order_is_labelled_as_the_network_was_trained(tmp_path):
    """The same scan stored LPS instead of RAS (as the training image): the network sees it turned to RAS,
    and its labels come back in the file's own order - not mirrored left-right and front-back."""
    _trained_folder(tmp_path, (16, 16, 8))
    image = np.random.default_rng(3).normal(5, 2, (16, 16, 8)).astype(np.float32)
    ras = nib.Nifti1Image(image, TRAINED_AFFINE)
    lps = nib.as_closest_canonical(ras).slicer[::-1, ::-1, :]  # the same voxels in space, stored L->R, P->A
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    nib.save(ras, tmp_path / "ras.nii.gz")
    nib.save(lps, tmp_path / "lps.nii.gz")
    labelled = {}
    for name in ("ras", "lps"):
        written, notes = predict_volume(tmp_path, str(tmp_path / f"{name}.nii.gz"),
                                        tmp_path / f"{name}-labels.nii.gz")
        assert notes == []
        labelled[name] = nib.as_closest_canonical(nib.load(written)).get_fdata()
    np.testing.assert_array_equal(labelled["lps"], labelled["ras"])
    mirrored = predict_sliding_window(tmp_path, np.asarray(lps.dataobj))[::-1, ::-1, :]  # in stored order
    assert np.mean(mirrored != labelled["ras"]) > 0.05  # what it was labelled as before: not the same


def _smooth_scan(shape, seed):
    """Intensities with structure a few voxels wide (normalised like the trained folder's 5 +- 2)."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.random.default_rng(seed).normal(0, 1, shape), 1.5)
    return (5 + 2 * smooth / smooth.std()).astype(np.float32)


@pytest.mark.parametrize("stored", ["ras", "lps"])
def test_a_scan_of_finer_voxels_is_labelled_at_the_training_voxel_size(tmp_path, stored):
    """The same anatomy at half the voxel size (in either axis order): labelled on the training grid, its
    labels agree with those of the scan at the training voxel size; the network run on the fine voxels sees
    structures twice as large as it learnt and agrees far less."""
    from skimage.transform import resize

    _trained_folder(tmp_path, (16, 16, 8))
    coarse = _smooth_scan((24, 24, 16), 4)
    nib.save(nib.Nifti1Image(coarse, TRAINED_AFFINE), tmp_path / "coarse.nii.gz")
    reference = np.asarray(nib.load(predict_volume(tmp_path, str(tmp_path / "coarse.nii.gz"),
                                                   tmp_path / "coarse-labels.nii.gz")[0]).dataobj)
    fine = nib.Nifti1Image(resize(coarse, (48, 48, 32), order=3, preserve_range=True).astype(np.float32),
                           np.diag([0.4, 0.4, 0.75, 1.0]))
    if stored == "lps":
        fine = nib.as_closest_canonical(fine).slicer[::-1, ::-1, :]
    nib.save(fine, tmp_path / "fine.nii.gz")
    expected = resize(reference, (48, 48, 32), order=0, preserve_range=True, anti_aliasing=False)
    agreement = {}
    for resample in (True, False):
        written, notes = predict_volume(tmp_path, str(tmp_path / "fine.nii.gz"),
                                        tmp_path / "fine-labels.nii.gz", resample=resample)
        result = nib.load(written)
        assert result.shape == (48, 48, 32)
        np.testing.assert_allclose(result.affine, fine.affine)
        agreement[resample] = np.mean(nib.as_closest_canonical(result).get_fdata() == expected)
        assert len(notes) == 1 and ("24 x 24 x 16 voxels" in notes[0]) == resample
    assert agreement[True] > 0.9 and agreement[False] < 0.6, agreement


def test_notes_say_what_the_network_cannot_be_turned_to(tmp_path):
    _trained_folder(tmp_path, (16, 16, 8))
    coarse = tmp_path / "coarse.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 8), np.float32), np.diag([1.6, 0.8, 1.5, 1.0])), coarse)
    written, notes = predict_volume(tmp_path, str(coarse), tmp_path / "labels.nii.gz")
    assert notes == ["its voxels are 1.6 x 0.8 x 1.5 mm, the training image's 0.8 x 0.8 x 1.5 mm along the "
                     "same axes: labelled at the training voxel size (32 x 16 x 8 voxels, linear "
                     "interpolation), the labels brought back to the image's grid (nearest neighbour)"]
    assert nib.load(written).shape == (16, 16, 8)
    _, notes = predict_volume(tmp_path, str(coarse), tmp_path / "labels.nii.gz", resample=False)
    assert notes == ["its voxels are 1.6 x 0.8 x 1.5 mm, the training image's 0.8 x 0.8 x 1.5 mm along the "
                     "same axes: the network sees anatomy at another scale; resample the image to the "
                     "training spacing for labels to trust"]
    sagittal = tmp_path / "sagittal.nii.gz"  # axes stored S, A, R: sizes compared along the file's own axes
    stored_sar = np.array([[0, 0, 0.8, 0], [0, 0.8, 0, 0], [1.5, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros((8, 16, 16), np.float32), stored_sar), sagittal)
    assert predict_volume(tmp_path, str(sagittal), tmp_path / "labels.nii.gz")[1] == []
    thin = tmp_path / "slice.nii.gz"  # one slice: its thickness is not compared
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 1), np.float32), np.diag([0.8, 0.8, 5.0, 1.0])), thin)
    assert predict_volume(tmp_path, str(thin), tmp_path / "labels.nii.gz")[1] == []
    checkpoint = load_checkpoint(tmp_path)
    config = {key: value for key, value in checkpoint.config.items() if key != "affine"}
    save_checkpoint(tmp_path, build_model("unet", out_channels=3, width=2), None, 7, config)
    _, notes = predict_volume(tmp_path, str(coarse), tmp_path / "labels.nii.gz")
    assert notes and notes[0].startswith("the checkpoint does not record the training image's grid")


def test_an_image_no_larger_than_the_networks_downsampling_is_refused_naming_it(tmp_path):
    _trained_folder(tmp_path, (16, 16, 8))
    tiny = tmp_path / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 6, 8), np.float32), TRAINED_AFFINE), tiny)
    with pytest.raises(InputError, match="no larger than the network's whole downsampling") as info:
        predict_volume(tmp_path, str(tiny), tmp_path / "labels.nii.gz")
    assert info.value.path == str(tiny)
    fine = tmp_path / "fine.nii.gz"  # large enough on its own voxels, too small at the training voxel size
    nib.save(nib.Nifti1Image(np.zeros((14, 14, 12), np.float32), np.diag([0.4, 0.4, 0.75, 1.0])), fine)
    with pytest.raises(InputError, match=r"resampled to the training voxel size: 7 x 7 x 6 voxels; "
                                         r"--no-resample labels its own voxels"):
        predict_volume(tmp_path, str(fine), tmp_path / "labels.nii.gz")
    assert nib.load(predict_volume(tmp_path, str(fine), tmp_path / "labels.nii.gz", resample=False)[0]
                    ).shape == (14, 14, 12)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_a_2d_image_gets_2d_labels(tmp_path, suffix):
    """A single slice is read as I x J x 1 to be labelled; its labels are written in its two dimensions."""
    import SimpleITK as sitk

    _trained_folder(tmp_path, (16, 16, 8))
    pixels = np.random.default_rng(3).normal(5, 2, (20, 12)).astype(np.float32)
    image_path = tmp_path / f"slice{suffix}"
    if suffix == ".mha":
        sitk.WriteImage(sitk.GetImageFromArray(pixels.T.copy()), str(image_path))  # ITK's arrays are (y, x)
    else:
        nib.save(nib.Nifti1Image(pixels, np.diag([0.7, 0.7, 3.0, 1.0])), str(image_path))
    written, _ = predict_volume(tmp_path, str(image_path), tmp_path / "labels.nii.gz")
    result = nib.load(written)
    assert result.shape == (20, 12)
    assert set(np.unique(np.asarray(result.dataobj))) <= {0, 1, 2}


def test_predict_seg_cli_labels_another_scan_and_never_writes_over_it(tmp_path, monkeypatch, capsys):
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
    trained_labels = tmp_path / "trained_labels.nii.gz"  # nor the labels the run was trained on
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 7), np.uint8), affine), str(trained_labels))
    kept = trained_labels.read_bytes()
    state_file = tmp_path / "checkpoint" / "checkpoint.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "config": {**state["config"], "labels": str(trained_labels)}}))
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(image_path),
                      "--out", str(trained_labels)]) == 2
    assert trained_labels.read_bytes() == kept
    elsewhere = tmp_path / "elsewhere"  # a path stored as typed by an older run names no file for certain
    elsewhere.mkdir()
    state_file.write_text(json.dumps({**state, "config": {**state["config"], "labels": "seg.nii.gz"}}))
    monkeypatch.chdir(elsewhere)
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(image_path),
                      "--out", "seg.nii.gz", "--device", "cpu"]) == 0
    out = tmp_path / "labels.nii.gz"
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(image_path), "--out", str(out),
                      "--device", "cpu"]) == 0
    result = nib.load(out)
    assert result.shape == (10, 12, 7)
    np.testing.assert_allclose(result.affine, affine)
    coarse = tmp_path / "coarse.nii.gz"  # --no-resample: labelled on its own voxels, with a warning
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 7), np.float32), np.diag([1.6, 0.8, 1.5, 1.0])), coarse)
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(coarse), "--out", str(out),
                      "--no-resample"]) == 0
    assert "resample the image to the training spacing" in capsys.readouterr().err
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(coarse), "--out", str(out)]) == 0
    assert "labelled at the training voxel size (20 x 12 x 7 voxels" in capsys.readouterr().err
    assert nib.load(out).shape == (10, 12, 7)
    assert main.main(["predict-seg", "--run", str(tmp_path / "nowhere"), "--image", str(image_path),
                      "--out", str(out)]) == 2


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predict_seg_refuses_non_finite_intensities_and_says_what_reading_found(tmp_path, capsys, value):
    """One NaN turns every window holding it to NaN (class 0 everywhere there): refused, as train-seg does.
    A 4D file is labelled from its first volume, and the command says so."""
    import main

    _trained_folder(tmp_path, (16, 16, 8))
    image = np.random.default_rng(3).normal(5, 2, (10, 12, 7, 2)).astype(np.float32)
    four_d = tmp_path / "four_d.nii"
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(four_d))
    out = tmp_path / "labels.nii.gz"
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(four_d), "--out", str(out)]) == 0
    assert f"warning: {four_d}: 4D image with 2 volumes" in capsys.readouterr().err
    image[3, 4, 5, 0] = value
    bad = tmp_path / "bad.nii"
    nib.save(nib.Nifti1Image(image[..., 0], np.eye(4)), str(bad))
    assert main.main(["predict-seg", "--run", str(tmp_path), "--image", str(bad),
                      "--out", str(tmp_path / "bad_labels.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "NaN or infinite values (1 voxels)" in err
    assert not (tmp_path / "bad_labels.nii.gz").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "optimizer"])
def test_a_damaged_checkpoint_is_named(tmp_path, damage):
    _trained_folder(tmp_path, (16, 16, 8))
    folder = tmp_path / "checkpoint"
    weights = folder / "model.safetensors"
    if damage == "truncated":
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size * 9 // 10)
    elif damage == "garbage":
        weights.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        (folder / "optimizer.pt").write_bytes(b"")
    with pytest.raises(InputError, match="the checkpoint cannot be read") as caught:
        load_checkpoint(tmp_path)
    assert str(folder) in str(caught.value)


@pytest.mark.parametrize("extent, window, margin", [(64, 64, 8), (64, 32, 4), (70, 32, 4), (33, 32, 4),
                                                    (100, 16, 2), (48, 16, 0), (17, 16, 7)])
def test_window_tiling_covers_the_axis_once_with_context_on_both_sides(extent, window, margin):
    tiles = window_tiling(extent, window, margin)
    owner = np.full(extent, -1)
    for index, (start, kept) in enumerate(tiles):
        assert 0 <= start <= extent - min(window, extent)
        assert start <= kept.start < kept.stop <= start + window
        owner[kept] = index
        for v in (kept.start, kept.stop - 1):
            assert v - start >= margin or start == 0
            assert start + window - 1 - v >= margin or start + window >= extent
    assert (owner >= 0).all()  # every voxel is labelled
    assert sum(k.stop - k.start for _, k in tiles) == extent  # ... exactly once


def windows_on_ranks(path: str, window: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The partitioned window-by-window labels on a 2x1x1 mesh, and the same windows run whole by the plain
    network (with each voxel's margin between its two largest logits), on rank 0."""
    from engines.partition.convert import partition_model
    from engines.partition.data import BlockFile
    from engines.partition.mesh import SpatialMesh
    from engines.partition.predict import predict_partitioned

    torch.manual_seed(0)
    plain = build_model("unet", out_channels=3, width=2).eval()
    mesh = SpatialMesh((2, 1, 1))
    labels = predict_partitioned(partition_model(copy.deepcopy(plain), mesh), BlockFile(path), window, mesh,
                                 "cpu")
    if labels is None:
        return None
    volume = np.load(path)
    expected, margin = np.zeros(volume.shape, np.uint8), np.zeros(volume.shape, np.float32)
    tiles = [window_tiling(n, w, w // 8) for n, w in zip(volume.shape, window, strict=True)]
    with torch.no_grad():
        for corner in itertools.product(*tiles):
            box = tuple(slice(start, start + w) for (start, _), w in zip(corner, window, strict=True))
            logits = plain(torch.from_numpy(volume[box])[None, None])[0]
            top = logits.topk(2, dim=0).values
            kept = tuple(keep for _, keep in corner)
            local = tuple(slice(k.start - b.start, k.stop - b.start) for k, b in zip(kept, box, strict=True))
            expected[kept] = logits.argmax(0).numpy()[local]
            margin[kept] = (top[0] - top[1]).numpy()[local]
    return labels, expected, margin


def test_partitioned_windows_label_the_volume_as_the_plain_network_does(tmp_path, ranks):
    volume = np.random.default_rng(4).normal(0, 1, (48, 24, 24)).astype(np.float32)
    np.save(tmp_path / "image.npy", volume)
    labels, expected, margin = ranks(2).run(windows_on_ranks, str(tmp_path / "image.npy"), (32, 16, 16))[0]
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    differ = labels != expected
    assert not differ[margin > 1e-4].any()  # float32 summation order can only flip near-ties
    assert differ.mean() < 1e-3
    assert len(np.unique(expected)) == 3  # a network that says something


def _window_for(budget_bytes: float, per_voxel: float, shape, crop, block, rank_scale=None):
    """prediction_window on this rank with the memory figures given (a rank-dependent budget if asked)."""
    import torch.distributed as dist

    from engines.partition import predict as predict_module
    from engines.partition.mesh import SpatialMesh

    if rank_scale is not None:
        budget_bytes *= rank_scale[dist.get_rank()]
    measured = predict_module._free_bytes, predict_module._window_bytes_per_voxel
    predict_module._free_bytes = lambda _device: budget_bytes / predict_module.MEMORY_SHARE
    predict_module._window_bytes_per_voxel = lambda *_args: per_voxel
    try:
        mesh = SpatialMesh((2, 1, 1)) if dist.is_initialized() else SpatialMesh((1, 1, 1))
        image = type("Image", (), {"shape": tuple(shape)})()
        return predict_module.prediction_window(torch.nn.Identity(), image, crop, block, mesh, "cpu")
    finally:
        predict_module._free_bytes, predict_module._window_bytes_per_voxel = measured


@pytest.mark.parametrize("shape, budget_voxels, expected", [
    ((224, 240, 192), 10**9, (224, 240, 192)),  # the whole volume fits: one pass
    ((224, 240, 192), 0, (64, 64, 64)),  # nothing to spare: the training crop, whose step fitted
    # Two windows of 160 along D (each voxel 20 from a window's edge) where halving gave three of 128:
    ((256, 64, 64), 0.65 * 256 * 64 * 64, (160, 64, 64)),
    # Room for an eighth: a cube with 16 voxels of context, not a 512x64x64 rod with 8 on two axes:
    ((512, 512, 512), 128**3, (128, 128, 128)),
])
def test_the_window_is_the_best_that_fits_down_to_the_crop(shape, budget_voxels, expected):
    assert _window_for(budget_voxels * 100.0, 100.0, shape, (64, 64, 64), (16, 16, 16)) == expected


def _rank(shape, window):
    """What the choice ranks by, from window_tiling alone: context (the smallest window extent over the
    axes it tiles; larger is better), then voxels computed overall, then windows."""
    counts = [len(window_tiling(n, w, w // 8)) for n, w in zip(shape, window, strict=True)]
    context = min((w for c, w in zip(counts, window, strict=True) if c > 1), default=max(shape) + 1)
    return -context, math.prod(c * w for c, w in zip(counts, window, strict=True)), math.prod(counts)


@pytest.mark.parametrize("shape, crop, block", [((192, 160, 96), (32, 32, 32), (16, 16, 16)),
                                                ((320, 192, 96), (64, 32, 32), (32, 16, 16))])
def test_no_window_that_fits_ranks_better(shape, crop, block):
    from engines.partition.predict import best_window

    axes = ([*range(c, n, b), n] for n, c, b in zip(shape, crop, block, strict=True))
    every = list(itertools.product(*axes))  # all windows of block multiples from the crop up
    for budget in np.geomspace(math.prod(crop), math.prod(shape), 30):
        window = best_window(shape, crop, block, budget)
        assert math.prod(window) <= budget
        assert _rank(shape, window) == min(_rank(shape, w) for w in every if math.prod(w) <= budget)


def test_every_window_stays_a_multiple_of_the_block_and_at_least_the_crop():
    shape, crop, block = (320, 192, 96), (64, 32, 32), (32, 16, 16)
    for budget in np.geomspace(1, 320 * 192 * 96, 25):
        window = _window_for(budget, 1.0, shape, crop, block)
        assert all(w % b == 0 and c <= w <= n for w, b, c, n in zip(window, block, crop, shape, strict=True))
        assert math.prod(window) <= budget or window == crop


def test_ranks_agree_on_the_most_cautious_window(ranks):
    windows = ranks(2).run(_window_for, 224 * 240 * 192 * 1.0, 1.0, (224, 240, 192), (64, 64, 64),
                           (32, 16, 16), (1.0, 0.3))
    assert windows[0] == windows[1] != (224, 240, 192)  # rank 1's smaller budget decided for both


def test_the_forward_memory_per_voxel_is_measured(tmp_path):
    from engines.partition.data import BlockFile
    from engines.partition.mesh import SpatialMesh
    from engines.partition.predict import _window_bytes_per_voxel

    np.save(tmp_path / "image.npy", np.zeros((64, 64, 64), np.float32))
    model = build_model("basicunet", out_channels=3, width=8)
    optimizer = torch.optim.Adam(model.parameters())
    for _ in range(3):  # as after training: its freed activations sit in the heap, ready for reuse
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(1, 1, 64, 64, 64)).square().mean().backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    per_voxel = _window_bytes_per_voxel(model.eval(), BlockFile(tmp_path / "image.npy"), (64, 64, 64),
                                        SpatialMesh((1, 1, 1)), torch.device("cpu"))
    assert 8 * 4 < per_voxel < 8 * 4 * 100  # more than one 8-channel float32 map, less than 100 of them


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda state: [state], "holds no step and configuration"),
    (lambda state: {"config": state["config"]}, "holds no step and configuration"),
    (lambda state: {**state, "step": "7"}, "holds no step and configuration"),
    (lambda state: {"step": 7}, "holds no step and configuration"),
    (lambda state: {**state, "config": {**state["config"], "model": "resnet"}}, "unusable 'model': 'resnet'"),
    (lambda state: {**state, "config": {k: v for k, v in state["config"].items() if k != "multiple"}},
     "lacks 'multiple'"),
    (lambda state: {**state, "config": {**state["config"], "std": 0}}, "unusable 'std': 0"),
    (lambda state: {**state, "config": {**state["config"], "values": [0, 1]}},
     "2 label values for 3 classes"),
])
def test_a_checkpoint_json_not_as_train_seg_writes_it_is_named(tmp_path, edit, problem):
    _trained_folder(tmp_path, (16, 16, 8))
    state_file = tmp_path / "checkpoint" / "checkpoint.json"
    state_file.write_text(json.dumps(edit(json.loads(state_file.read_text()))))
    with pytest.raises(InputError, match=problem) as info:
        predict_sliding_window(tmp_path, np.zeros((16, 16, 8), np.float32))
    assert info.value.path == str(tmp_path / "checkpoint")
