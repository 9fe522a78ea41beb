"""Bad input refused with exit 2 and a message: sr-bench scales it cannot score, a non-finite --nan-fill,
broken or mismatched model cards, values too large for a float32 result."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

import main
from engines.errors import InputError
from engines.superres.bench import HOLDOUT_SHAPE, SCALES, centre_crop_for_scale, check_bench_scale
from engines.superres.infer import super_resolve, super_resolve_volume
from engines.superres.weights import MODELS_DIR, load_model
from engines.volume import Volume

torch.set_num_threads(1)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.run_command(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("scale", ["2.37", "3.999", "1.01"])
def test_sr_bench_refuses_a_scale_it_cannot_score_on_aligned_crops(scale, capsys):
    code, _, err = _run(capsys, "sr-bench", "--quick", "--json", "--scales", "2", scale)
    assert code == 2, err
    assert f"x{scale}" in err and "multiple" in err and "Traceback" not in err


@pytest.mark.parametrize("scale", [*SCALES, *np.round(np.arange(1.05, 4.0001, 0.05), 2).tolist(), 3.7])
def test_bench_scores_short_fractions_on_most_of_the_slice(scale):
    check_bench_scale(scale)
    cy, cx = centre_crop_for_scale(HOLDOUT_SHAPE, scale)
    for crop, n in ((cy, HOLDOUT_SHAPE[0]), (cx, HOLDOUT_SHAPE[1])):
        side = crop.stop - crop.start
        assert side >= 2 / 3 * n
        assert abs(side / scale - round(side / scale)) < 1e-9  # the low-resolution side is whole


@pytest.mark.parametrize("fill", ["nan", "inf", "-inf", "1e39"])
def test_a_non_finite_nan_fill_exits_2(fill, tmp_path, capsys):
    data = np.random.default_rng(0).random((12, 12, 3)).astype(np.float32)
    data[2, 3, 1] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    out = tmp_path / "o.nii.gz"
    code, _, err = _run(capsys, "sr", str(path), "--scale", "2", f"--nan-fill={fill}", "--out", str(out))
    assert code == 2 and "(CLI: --nan-fill) must be a finite number" in err
    assert not out.exists()


def test_the_api_refuses_a_non_finite_nan_fill():
    img = np.ones((6, 6), np.float32)
    img[0, 0] = 2
    with pytest.raises(InputError, match="finite"):
        super_resolve(img, 2, 2, nan_fill=float("nan"))
    with pytest.raises(InputError, match="finite"):
        super_resolve_volume(Volume(data=img[:, :, None], affine=np.eye(4)), 2, 2, plane=None,
                             nan_fill=float("inf"))


def _card_copy(tmp_path, name: str, architecture=None, weights: str = "sr_light"):
    card = json.loads((MODELS_DIR / "sr_light.json").read_text())
    if architecture is not None:
        card["architecture"] = architecture
    (tmp_path / f"{name}.json").write_text(json.dumps(card))
    shutil.copy(MODELS_DIR / f"{weights}.safetensors", tmp_path / f"{name}.safetensors")
    return tmp_path / name


@pytest.mark.parametrize(("architecture", "message"), [
    ({"class": "MetaSR", "n_feats": -3}, "n_feats"),
    ({"class": "MetaSR", "bogus": 1}, "bogus"),
    ("x", "JSON object"),
    ({"class": "MetaSR", "n_feats": "32"}, "n_feats"),
])
def test_a_bad_architecture_exits_2_naming_the_card(architecture, message, tmp_path, capsys):
    stem = _card_copy(tmp_path, "bad", architecture)
    with pytest.raises(InputError, match=message) as info:
        load_model(stem)
    assert info.value.path == str(stem.with_suffix(".json"))
    img = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((10, 10, 2)).astype(np.float32), np.eye(4)), img)
    code, _, err = _run(capsys, "sr", str(img), "--scale", "2", "--model", str(stem),
                        "--out", str(tmp_path / "o.nii.gz"))
    assert code == 2 and str(stem.with_suffix(".json")) in err and "Traceback" not in err


def test_weights_that_do_not_match_the_cards_sha256_are_refused_naming_both(tmp_path):
    stem = _card_copy(tmp_path, "swapped", weights="sr_light_gan")  # same shapes, other weights
    with pytest.raises(InputError, match="SHA-256") as info:
        load_model(stem)
    assert str(stem.with_suffix(".safetensors")) in str(info.value)
    assert str(stem.with_suffix(".json")) in str(info.value)
    assert load_model(_card_copy(tmp_path, "same")) is not None  # an exact copy loads


def test_every_shipped_card_records_its_weights_hash():
    for card in MODELS_DIR.glob("sr_*.json"):
        assert len(json.loads(card.read_text())["weights_sha256"]) == 64
        load_model(card)  # and it matches


def test_values_near_the_float32_maximum_are_refused_not_turned_into_inf():
    img = (np.random.default_rng(0).random((16, 16)) * 3e38).astype(np.float32)
    with pytest.raises(InputError, match="float32"):
        super_resolve(img, 2, 2)
    big = img / np.float32(1e4)  # still huge, but with room for the overshoot
    out = super_resolve(big, 2, 2)
    assert np.isfinite(out).all()
