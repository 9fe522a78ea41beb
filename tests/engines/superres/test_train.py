"""Training: loss goes down, the job writes weights + card + checkpoint, stops on request, resumes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines.events import StopRequest, parse
from engines.superres.model import MetaSR
from engines.superres.resample import downsample_bicubic
from engines.superres.train import TrainConfig, Trainer, sample_scales, train
from engines.superres.weights import load_model, read_card

torch.set_num_threads(1)


def test_a_few_steps_reduce_l1_on_a_fixed_batch():
    torch.manual_seed(0)
    yy, xx = np.mgrid[0:40, 0:40]
    hr = torch.from_numpy(np.stack([np.sin(xx / (2 + i)) * np.cos(yy / (3 + i)) for i in range(4)]))
    hr = hr[:, None].float()
    lr = downsample_bicubic(hr, (16, 16))
    model = MetaSR(n_feats=8, n_resblocks=1, mlp_hidden=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.l1_loss(model(lr, 2.5, 2.5), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]  # losses[0] is bicubic: an untrained MetaSR is bicubic


def test_scales_cover_the_grid_and_the_one_axis_case():
    cfg = TrainConfig(p_one_axis=0.2, p_independent=0.3)
    rng = np.random.default_rng(0)
    pairs = [sample_scales(cfg, rng) for _ in range(400)]
    values = {v for p in pairs for v in p}
    assert values <= {1.0, *cfg.scales().tolist()}
    assert min(cfg.scales()) == 1.1 and max(cfg.scales()) == 4.0 and len(cfg.scales()) == 30
    assert any(1.0 in p for p in pairs) and any(p[0] != p[1] and 1.0 not in p for p in pairs)


@pytest.fixture
def volume_file(tmp_path):
    rng = np.random.default_rng(0)
    vol = np.zeros((40, 40, 40), np.float32)
    vol[5:35, 5:35, 5:35] = 1 + rng.random((30, 30, 30)).astype(np.float32)
    path = tmp_path / "vol.npy"
    np.save(path, vol)
    return str(path)


def _tiny(volume_file, **kw):
    base = dict(name="tiny", n_resblocks=1, n_feats=4, mlp_hidden=8, data=volume_file, holdout=[18, 22],
                steps_l1=4, steps_gan=2, batch_size=2, lr_patch=10, threads=1, log_every=2, eval_every=3,
                checkpoint_every=3, disc_base=4)
    return TrainConfig(**{**base, **kw})


def _events(stream):
    return [e for e in map(parse, stream.getvalue().splitlines()) if e]


def test_training_job_writes_models_cards_and_events(volume_file, tmp_path):
    stream = io.StringIO()
    result = train(_tiny(volume_file), tmp_path / "run", command="python main.py sr-train ...", stream=stream)
    events = _events(stream)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "metric" in kinds and "checkpoint" in kinds
    assert [e["step"] for e in events if e["event"] == "progress"] == [2, 4, 6]
    assert all(e["total"] == 6 for e in events if e["event"] == "progress")
    assert result["outputs"] == [str(tmp_path / "run" / "tiny.safetensors"),
                                 str(tmp_path / "run" / "tiny_gan.safetensors")]
    card = read_card(tmp_path / "run" / "tiny_gan.json")
    assert card["stage"] == "gan" and card["steps_done"] == 6 and card["training"]["steps_l1"] == 4
    model = load_model(tmp_path / "run" / "tiny_gan")
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert read_card(tmp_path / "run" / "tiny.json")["stage"] == "l1"
    # the card reproduces the settings
    assert TrainConfig.from_dict(card) == _tiny(volume_file)


def test_nan_voxels_are_trained_on_as_zero_and_said(volume_file, tmp_path):
    volume = np.load(volume_file)
    volume[0, :3, 0] = np.nan
    volume[1, 0, 0] = np.inf
    path = tmp_path / "holes.npy"
    np.save(path, volume)
    stream = io.StringIO()
    train(_tiny(str(path), steps_l1=1, steps_gan=0), tmp_path / "run", stream=stream)
    logs = [e["message"] for e in _events(stream) if e["event"] == "log"]
    assert f"4 NaN or infinite voxels of {path} are trained on as 0" in logs


def test_stop_request_checkpoints_and_resume_continues(volume_file, tmp_path):
    stop = StopRequest()
    stop.set()
    stream = io.StringIO()
    first = Trainer(_tiny(volume_file, steps_gan=0), tmp_path / "run", stop=stop, stream=stream).run()
    assert first["stopped"] and first["step"] == 0
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"] == 0
    # run 3 steps (checkpoint at 3), then resume to the end
    trainer = Trainer(_tiny(volume_file, steps_gan=0), tmp_path / "run", stream=io.StringIO())
    trainer.run()
    resumed = Trainer(_tiny(volume_file, steps_gan=0, steps_l1=6), tmp_path / "run", stream=stream)
    out = resumed.run(resume=True)
    assert not out["stopped"] and out["step"] == 6
    assert any(e["event"] == "log" and "resumed from step 4" in e["message"] for e in _events(stream))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="degradations"):
        TrainConfig(degradations=["blur"])
    with pytest.raises(ValueError, match="scales"):
        TrainConfig(scale_min=0.5)
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"stepz": 3})


@pytest.mark.parametrize(("setting", "message"), [
    ({"steps_l1": "abc"}, "steps_l1 must be a whole number"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
    ({"scale_step": 0}, "scale_step must be positive"),
    ({"lr": -1e-3}, "lr must be positive"),
    ({"p_kspace": 2.0}, "p_kspace is a probability"),
    ({"planes": ["oblique"]}, "planes must be among"),
    ({"name": "../escaped"}, "name must be a plain file name"),
    ({"holdout": 5}, r"holdout must be \[k0, k1\]"),
])
def test_settings_out_of_range_are_named(setting, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(setting)
    assert TrainConfig.from_dict({"batch_size": 16.0, "lr": 1}).batch_size == 16  # JSON's loose numbers


def test_resume_refuses_other_settings_and_a_missing_checkpoint(volume_file, tmp_path):
    from engines.errors import InputError

    with pytest.raises(InputError, match="nothing to resume"):
        Trainer(_tiny(volume_file, steps_gan=0), tmp_path / "none", stream=io.StringIO()).run(resume=True)
    Trainer(_tiny(volume_file, steps_gan=0), tmp_path / "run", stream=io.StringIO()).run()
    other = Trainer(_tiny(volume_file, steps_gan=0, lr=0.01), tmp_path / "run", stream=io.StringIO())
    with pytest.raises(InputError, match=r"other settings: lr 0.0005 \(now 0.01\)"):
        other.run(resume=True)
    # more steps are a resumable change
    out = Trainer(_tiny(volume_file, steps_gan=0, steps_l1=6), tmp_path / "run", stream=io.StringIO()).run(
        resume=True)
    assert out["step"] == 6


def test_a_holdout_outside_the_volume_is_an_input_error(volume_file, tmp_path):
    from engines.errors import InputError

    with pytest.raises(InputError, match="not a slab of the"):
        Trainer(_tiny(volume_file, holdout=[90, 110]), tmp_path / "run", stream=io.StringIO())


def _cli(*argv: str) -> tuple[int, str]:
    import contextlib

    import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main.run_command(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize(("volume", "message"), [
    (np.ones((40, 40, 40), np.float32), "the image is constant (1.0)"),
    (np.random.default_rng(0).random((40, 40, 40)).astype(np.float32),
     "the training slices are smaller than a 48x48 patch at --lr-patch 24; give a smaller --lr-patch"),
])
def test_a_scan_adapt_cannot_train_on_is_named_with_what_to_change(tmp_path, volume, message):
    import nibabel as nib

    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), scan)
    code, err = _cli("sr-train", "--adapt", str(scan), "--init", "sr_light", "--out", str(tmp_path / "run"))
    assert code == 2 and f"{scan}: {message}" in err


def test_adapt_names_its_model_after_the_init_file_and_writes_only_into_out(volume_file, tmp_path):
    """--init given as a path: the model is OUT/<stem>_adapted, never written beside the init file."""
    Trainer(_tiny(volume_file, steps_gan=0), tmp_path / "base", stream=io.StringIO()).run()
    before = sorted(p.name for p in (tmp_path / "base").iterdir())
    init = str(tmp_path / "base" / "tiny.safetensors")
    code, err = _cli("sr-train", "--adapt", volume_file, "--init", init, "--out", str(tmp_path / "adapted"),
                     "--steps-l1", "2", "--batch-size", "2", "--lr-patch", "10", "--threads", "1",
                     "--log-every", "1", "--eval-every", "2", "--checkpoint-every", "2")
    assert code == 0, err
    assert (tmp_path / "adapted" / "tiny_adapted.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == before
    # an adapted model held nothing out: sr-bench says so rather than crash
    code, err = _cli("sr-bench", "--model", str(tmp_path / "adapted" / "tiny_adapted"), "--quick")
    assert code == 2 and "held out no MNI152 slab" in err


def test_resume_without_a_config_takes_the_runs_own_settings(volume_file, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(_tiny(volume_file, steps_gan=0).to_dict()))
    assert _cli("sr-train", "--config", str(config), "--out", str(tmp_path / "run"))[0] == 0
    code, err = _cli("sr-train", "--resume", "--out", str(tmp_path / "run"), "--steps-l1", "6")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"] == 6
    code, err = _cli("sr-train", "--resume", "--out", str(tmp_path / "run"), "--lr", "0.01")
    assert code == 2 and "other settings: lr" in err


@pytest.mark.parametrize("scale", ["5", "0.5"])
def test_sr_bench_refuses_scales_outside_1_to_4(scale):
    code, err = _cli("sr-bench", "--scales", "2", scale, "--quick")
    assert code == 2 and "(1, 4]" in err


@pytest.mark.parametrize("card", ["sr_light", "sr_full"])
def test_the_command_in_a_shipped_card_gives_back_its_training_settings(card):
    """The card's sr-train command (trained on a saved MNI152 array with --data) holds out the same slab."""
    import argparse
    import shlex

    from engines.superres.cli import register, train_config
    from engines.superres.weights import read_card

    recorded = read_card(card)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    cfg = train_config(parser.parse_args(shlex.split(recorded["trained_with"]["command"])[2:]))
    assert cfg.holdout == recorded["training"]["holdout"] == [90, 110]
    for key in ("n_resblocks", "n_feats", "mlp_hidden", "steps_l1", "steps_gan"):
        assert getattr(cfg, key) == recorded["training"][key], key
