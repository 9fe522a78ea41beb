"""`partition-check` and `train-seg` from the command line: bad input refused before any process starts,
JSON events, checkpoint on SIGTERM, a dead rank reported, --resume continuing the same loss curve."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import main
from engines.errors import InputError
from engines.partition.checkpoint import load_checkpoint

ROOT = Path(main.__file__).resolve().parent
AFFINE = np.array([[1.5, 0, 0, 10], [0, 1, 0, -5], [0, 0, 2, 3], [0, 0, 0, 1]], dtype=float)


def _write(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


@pytest.fixture
def volumes(tmp_path):
    """A 32x24x20 image with two nested balls and its 3-class labels."""
    grid = np.mgrid[:32, :24, :20].astype(np.float32)
    radius = np.sqrt(((grid - np.array([16, 12, 10], dtype=np.float32)[:, None, None, None]) ** 2).sum(0))
    labels = (radius < 7).astype(np.uint8) + (radius < 3.5)
    image = labels * 100 + np.random.default_rng(0).normal(0, 20, labels.shape)
    return (_write(tmp_path / "image.nii.gz", image.astype(np.float32)),
            _write(tmp_path / "labels.nii.gz", labels))


def test_the_rank_side_imports_no_medical_image_reader():
    """A GPU machine may have torch and MONAI only (tools/gpu_check.sh): partition-check and the ranks'
    module must start there; only the launcher's preparing and predict-seg read image files."""
    code = ("import sys, engines.partition.cli, engines.partition.train, engines.partition.check; "
            "print([m for m in ('nibabel', 'pydicom', 'SimpleITK', 'napari') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def _train_args(volumes, out, *extra):
    image, labels = volumes
    return ["train-seg", "--image", image, "--labels", labels, "--ranks", "2", "--mesh", "2x1x1",
            "--model", "unet",
            "--width", "2", "--lr", "0.01", "--crop", "full", "--out", str(out), *extra]


def _refused(capsys, argv, *fragments):
    assert main.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not even the "starting ranks" event: nothing was launched
    assert not (Path(argv[argv.index("--out") + 1]) / "data").exists()  # nor anything prepared
    for fragment in fragments:
        assert fragment in captured.err
    assert "Traceback" not in captured.err


def test_shape_and_affine_mismatch_are_refused(tmp_path, volumes, capsys):
    image, _ = volumes
    small = _write(tmp_path / "small.nii.gz", np.zeros((32, 24, 10), np.uint8))
    _refused(capsys, _train_args((image, small), tmp_path / "o", "--steps", "1"), "small.nii.gz",
             "(32, 24, 10)")
    shifted = AFFINE.copy()
    shifted[0, 3] += 4
    moved = _write(tmp_path / "moved.nii.gz", np.zeros((32, 24, 20), np.uint8), shifted)
    _refused(capsys, _train_args((image, moved), tmp_path / "o", "--steps", "1"), "moved.nii.gz", "affine")


def test_a_folder_another_job_is_using_is_refused_before_anything_is_prepared(tmp_path, volumes, capsys):
    from tests.engines.partition.test_job_lock import _launcher

    out = tmp_path / "run"
    holder, _ = _launcher(out)
    try:
        _refused(capsys, _train_args(volumes, out, "--steps", "1"), "another training job",
                 f"process {holder.pid}", str(out))
    finally:
        holder.kill()
        holder.wait()
    image, _ = volumes
    small = _write(tmp_path / "small.nii.gz", np.zeros((32, 24, 10), np.uint8))
    _refused(capsys, _train_args((image, small), tmp_path / "fresh", "--steps", "1"), "small.nii.gz")
    assert not (tmp_path / "fresh").exists()  # a refused job leaves no folder behind


def test_fractional_labels_are_refused(tmp_path, volumes, capsys):
    image, _ = volumes
    soft = _write(tmp_path / "soft.nii.gz", np.full((32, 24, 20), 0.5, np.float32))
    _refused(capsys, _train_args((image, soft), tmp_path / "o", "--steps", "1"), "soft.nii.gz",
             "whole numbers")


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--mesh", "2x2x1"], ["--ranks 2", "2x2x1", "4 ranks"]),
    (["--crop", "24,24,16"], ["24 along D is not a multiple of 16", "mesh 2x1x1"]),
    (["--crop", "64,16,16"], ["64 along D exceeds the volume's 32"]),
    (["--mesh", "2x2"], ["mesh must look like"]),
    (["--mesh", "1x1x4", "--ranks", "4"],
     ["20 voxels along W fill 3 of its 4 blocks", "use at most 3 along W"]),
])
def test_bad_mesh_ranks_and_crops_are_refused(tmp_path, volumes, capsys, extra, fragments):
    argv = _train_args(volumes, tmp_path / "o", "--steps", "1")
    for option, value in zip(extra[::2], extra[1::2], strict=True):
        argv[argv.index(option) + 1] = value
    _refused(capsys, argv, *fragments)


def test_missing_inputs_an_out_that_is_a_file_and_outputs_onto_inputs_are_refused(tmp_path, volumes, capsys):
    image, labels = volumes
    _refused(capsys, _train_args((str(tmp_path / "none.nii.gz"), labels), tmp_path / "o", "--steps", "1"),
             "none.nii.gz", "no such file")
    (tmp_path / "a_file").write_text("x")
    _refused(capsys, _train_args(volumes, tmp_path / "a_file", "--steps", "1"), "must be a folder")
    run = tmp_path / "run"  # an earlier run's prediction given as the labels of a new run into that folder
    run.mkdir()
    previous = Path(labels).replace(run / "prediction.nii.gz")
    before = previous.read_bytes()
    _refused(capsys, _train_args((image, str(previous)), run, "--steps", "1"), "would overwrite your data")
    assert previous.read_bytes() == before


def test_a_crop_may_reach_into_the_padding_as_full_does(tmp_path, volumes):
    """W is 20, padded to 24 for the network: a 24-voxel crop is what --crop full takes there."""
    from engines.partition.layout import crop_shape

    assert crop_shape("16,24,24", (32, 24, 20), (16, 8, 8), "2x1x1") == (16, 24, 24)
    with pytest.raises(InputError, match="32 along W exceeds the volume's 20 \\(padded to 24\\)"):
        crop_shape("16,24,32", (32, 24, 20), (16, 8, 8), "2x1x1")


def test_a_port_in_use_is_refused(tmp_path, volumes, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = _train_args(volumes, tmp_path / "o", "--steps", "1", "--port", str(port))
        _refused(capsys, argv, f"port {port}")


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--collective-timeout", "0"], "--collective-timeout must be positive"),
    (["--port", "70000"], "--port must be 1..65535"),
    (["--port", "-1"], "--port must be 1..65535"),
])
def test_options_out_of_range_are_refused_before_any_rank(tmp_path, volumes, capsys, extra, fragment):
    _refused(capsys, _train_args(volumes, tmp_path / "o", "--steps", "1", *extra), fragment)


@pytest.mark.parametrize(("extra", "fragment"), [(["--width", "0"], "--width must be at least 1"),
                                                 (["--timeout", "0"], "--timeout must be positive")])
def test_partition_check_options_out_of_range_exit_2(capsys, extra, fragment):
    assert main.main(["partition-check", "--ranks", "2", "--mesh", "2x1x1", *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_a_negative_checkpoint_interval_is_refused(tmp_path, volumes, capsys):
    argv = _train_args(volumes, tmp_path / "o", "--steps", "1", "--checkpoint-minutes", "-1")
    _refused(capsys, argv, "--checkpoint-minutes must be 0 or more")


def test_resume_without_checkpoint_is_refused(tmp_path, volumes, capsys):
    _refused(capsys, _train_args(volumes, tmp_path / "o", "--steps", "1", "--resume"), "no checkpoint")


class _Job:
    """`main.py ARGS` in a subprocess, its stdout events collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put(None)

    def next(self, name: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while (event := self.events.get(timeout=max(0.1, deadline - time.monotonic()))) is not None:
            self.seen.append(event)
            if event["event"] == name:
                return event
        raise AssertionError(f"no {name} event; saw {self.seen}; stderr:\n{self.proc.stderr.read()[-3000:]}")

    def finish(self, timeout: float = 180) -> tuple[int, list[dict]]:
        code = self.proc.wait(timeout=timeout)
        while (event := self.events.get(timeout=10)) is not None:
            self.seen.append(event)
        return code, self.seen


def _losses(events):
    return [e["loss"] for e in events if e["event"] == "metric"]


@pytest.mark.dist
def test_sigterm_checkpoints_and_exits_0_within_10_s(tmp_path, volumes):
    out = tmp_path / "run"
    job = _Job(*_train_args(volumes, out, "--steps", "100000"))
    job.next("progress")
    job.proc.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    code, events = job.finish(timeout=30)
    assert time.monotonic() - asked < 10
    assert code == 0
    done = [e for e in events if e["event"] == "done"][-1]
    assert done["stopped"] is True and done["prediction"] is None
    last_step = [e for e in events if e["event"] == "progress"][-1]["step"]
    assert done["step"] == last_step
    assert load_checkpoint(out).step == last_step


@pytest.mark.dist
def test_a_dead_rank_stops_the_others_with_an_error_naming_it(tmp_path, volumes):
    job = _Job(*_train_args(volumes, tmp_path / "run", "--steps", "100000"))
    pids = job.next("start")["pids"]
    job.next("progress")
    os.kill(pids[1], signal.SIGKILL)
    killed = time.monotonic()
    code, events = job.finish(timeout=90)
    assert time.monotonic() - killed < 60
    assert code == 1
    assert events[-1]["event"] == "error"
    assert "rank 1 died (SIGKILL)" in events[-1]["message"]
    for pid in pids:  # no rank left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.dist
def test_killing_the_launcher_stops_its_ranks_with_a_checkpoint(tmp_path, volumes):
    """The GUI kills a train-seg that is slow to stop, and its stdout with it: the ranks must not train on,
    orphaned, and what they learnt must be saved."""
    out = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "main.py"), *_train_args(volumes, out, "--steps", "100000")]
    proc = subprocess.Popen(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    events = (json.loads(line) for line in proc.stdout if line.startswith("{"))
    pids = next(e for e in events if e["event"] == "start")["pids"]
    step = next(e for e in events if e["event"] == "progress")["step"]
    proc.kill()
    proc.stdout.close()
    proc.wait()
    deadline = time.monotonic() + 60
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, pids))
    assert load_checkpoint(out).step >= step


@pytest.mark.dist
@pytest.mark.slow
def test_resume_continues_the_same_loss_curve_and_predicts(tmp_path, volumes):
    straight = _Job(*_train_args(volumes, tmp_path / "straight", "--steps", "6"))
    code, events = straight.finish()
    assert code == 0, straight.proc.stderr.read()
    first = _Job(*_train_args(volumes, tmp_path / "split", "--steps", "3", "--no-predict",
                              "--checkpoint-minutes", "1e-9"))
    assert first.finish()[0] == 0
    assert [e["step"] for e in first.seen if e["event"] == "checkpoint"] == [1, 2, 3]  # time's always up
    second = _Job(*_train_args(volumes, tmp_path / "split", "--steps", "6", "--resume"))
    code, resumed = second.finish()
    assert code == 0, second.proc.stderr.read()
    assert next(e for e in resumed if e["event"] == "start")["first_step"] == 4
    np.testing.assert_allclose(_losses(first.seen) + _losses(resumed), _losses(events), rtol=1e-6)
    assert _losses(events)[-1] < _losses(events)[0]
    prediction = nib.load(tmp_path / "straight" / "prediction.nii.gz")
    np.testing.assert_allclose(prediction.affine, AFFINE)
    assert prediction.shape == (32, 24, 20)
    assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2}


@pytest.mark.dist
def test_sparse_label_values_train_as_that_many_classes_and_come_back_as_themselves(tmp_path, volumes):
    """Labels 0, 3, 9 (ids as BraTS's or FreeSurfer's): three classes, Dice for each, predicted as 0, 3, 9;
    resuming on labels of other values is refused by name."""
    image, labels = volumes
    values = np.array([0, 3, 9], np.uint8)[np.asarray(nib.load(labels).dataobj)]
    sparse = _write(tmp_path / "sparse.nii.gz", values)
    job = _Job(*_train_args((image, sparse), tmp_path / "o", "--steps", "2"))
    code, events = job.finish()
    assert code == 0, job.proc.stderr.read()
    start = next(e for e in events if e["event"] == "start")
    assert start["classes"] == 3 and start["values"] == [0, 3, 9]
    assert {"event": "log", "message": "predicting the whole volume in one pass"}.items() <= next(
        e for e in events if e["event"] == "log" and e["message"].startswith("predicting")).items()
    assert all(len(e["dice"]) == 3 for e in events if e["event"] == "metric")
    prediction = np.asarray(nib.load(tmp_path / "o" / "prediction.nii.gz").dataobj)
    assert set(np.unique(prediction)) <= {0, 3, 9} and len(np.unique(prediction)) > 1
    assert load_checkpoint(tmp_path / "o").config["values"] == [0, 3, 9]
    with pytest.raises(InputError, match=r"no class for \(1, 2\); its classes are 0, 3, 9"):
        _plan(_train_args(volumes, tmp_path / "o", "--steps", "4", "--resume")[1:])


@pytest.mark.parametrize(("saved", "held", "classes"), [
    ({"classes": 5}, [0, 1, 4], (0, 1, 2, 3, 4)),  # a checkpoint from before values were kept: 0..C-1
    ({"classes": 3, "values": [0, 3, 9]}, [0, 9], (0, 3, 9)),  # labels without one of the classes
])
def test_resuming_keeps_the_checkpoints_classes(tmp_path, volumes, saved, held, classes):
    """Labels holding some of the network's classes resume it, each value in its own class."""
    from engines.partition.checkpoint import save_checkpoint
    from engines.partition.models import build_model

    image, labels = volumes
    values = np.array(held, np.uint8)[np.asarray(nib.load(labels).dataobj) % len(held)]
    held_labels = _write(tmp_path / "held.nii.gz", values)
    model = build_model("unet", out_channels=saved["classes"], width=2)
    save_checkpoint(tmp_path / "o", model, torch.optim.Adam(model.parameters()), 1,
                    {"model": "unet", "width": 2, **saved})
    plan = _plan(["--image", image, "--labels", held_labels, "--mesh", "2x1x1", "--model", "unet", "--width",
                  "2", "--steps", "4", "--out", str(tmp_path / "o"), "--resume"])
    assert plan.data.values == classes and plan.config["values"] == list(classes)
    written = plan.data.labels.read((slice(0, 32), slice(0, 24), slice(0, 20)))
    np.testing.assert_array_equal(np.asarray(classes)[written], values)


@pytest.mark.parametrize("inside", [".", "runs/a"])
def test_an_output_folder_in_an_input_folder_is_refused_before_anything_is_written_there(tmp_path, volumes,
                                                                                         capsys, inside):
    """A DICOM series is a folder: OUT in it would put the lock, prepared volumes and checkpoints among the
    files the job reads (their fingerprint changes as they are written, and the ranks never agree)."""
    series = tmp_path / "series"
    series.mkdir()
    (series / "slice1.dcm").write_bytes(b"")
    argv = _train_args((str(series), volumes[1]), series / inside)
    _refused(capsys, argv, str(series), "lies in this input folder")
    assert sorted(p.name for p in series.iterdir()) == ["slice1.dcm"]


def test_a_resume_from_another_networks_weights_or_optimizer_is_refused_before_any_rank(tmp_path, volumes,
                                                                                        capsys):
    """Files copied between runs: the launcher loads them into the network first, and says so briefly
    (a rank would fail with torch's page-long list of keys)."""
    from engines.partition.checkpoint import save_checkpoint
    from engines.partition.models import build_model

    config = {"model": "unet", "width": 2, "classes": 3, "values": [0, 1, 2]}
    unet = build_model("unet", out_channels=3, width=2)
    other = build_model("basicunet", out_channels=3, width=2)
    argv = _train_args(volumes, tmp_path / "o", "--steps", "4", "--resume")
    save_checkpoint(tmp_path / "o", other, None, 1, config)
    _refused(capsys, argv, "the checkpoint's weights do not fit this network: Error(s) in loading")
    save_checkpoint(tmp_path / "o", unet, torch.optim.Adam(other.parameters()), 1, config)
    _refused(capsys, argv, "the checkpoint's optimizer state does not fit this network")
    assert len(capsys.readouterr().err) < 1000


@pytest.mark.dist
def test_a_resume_without_optimizer_state_says_adam_starts_afresh(tmp_path, volumes):
    out = tmp_path / "run"
    code, _ = _Job(*_train_args(volumes, out, "--steps", "1", "--no-predict")).finish()
    assert code == 0
    (out / "checkpoint" / "optimizer.pt").unlink()
    code, events = _Job(*_train_args(volumes, out, "--steps", "2", "--no-predict", "--resume")).finish()
    assert code == 0
    assert any(e["event"] == "log" and "holds no optimizer state (optimizer.pt): Adam starts afresh"
               in e["message"] for e in events)


@pytest.mark.dist
def test_partition_check_prints_the_json_and_exits_0(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "partition-check", "--ranks", "2",
                             "--mesh",
                             "1x1x2", "--model", "unet", "--dtype", "float64", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"ranks": 2, "mesh": "1x1x2", "model": "unet", "ok": True}.items() <= report.items()
    assert report["max_abs_err_output"] < 1e-9 and report["max_rel_err_grad"] < 1e-9


def test_partition_check_refuses_ranks_that_do_not_fill_the_mesh(capsys):
    assert main.main(["partition-check", "--ranks", "3", "--mesh", "2x2x1"]) == 2
    assert "needs 4 ranks" in capsys.readouterr().err


def _plan(argv):
    """train-seg's plan (checked, prepared volumes) for these options, in this process."""
    import argparse

    from engines.partition.train import add_arguments, plan_training

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return plan_training(parser.parse_args(argv))


def test_the_plan_keeps_whole_float_labels_compact_and_pads_to_the_block(tmp_path, volumes):
    image, labels = volumes
    float_labels = _write(tmp_path / "float_labels.nii.gz", nib.load(labels).get_fdata().astype(np.float32))
    plan = _plan(["--image", image, "--labels", float_labels, "--mesh", "2x1x1", "--model", "unet", "--width",
                  "2", "--out", str(tmp_path / "o")])
    data = plan.data
    assert data.labels.dtype == np.uint8  # 1 byte a voxel on disk and in each rank's blocks
    assert plan.config["classes"] == 3 and data.image.dtype == np.float32
    np.testing.assert_allclose(plan.config["affine"], nib.load(image).affine)  # predict-seg turns scans to it
    assert data.labels.shape == data.image.shape
    blocks = zip(data.labels.shape, plan.config["multiple"], (2, 1, 1), strict=True)
    assert all(n % (m * b) == 0 for n, m, b in blocks)
    written = data.labels.read((slice(None),) * 3)
    np.testing.assert_array_equal(written[:32, :24, :20], np.asarray(nib.load(labels).dataobj))


def stopped_mid_step(folder: str) -> None:
    """One rank trains a phantom; in step 3 it gets SIGTERM and, right after, SIGKILL - as when a launcher
    loses patience with a long step. Only a checkpoint taken from the signal handler can survive."""
    from engines.events import StopRequest
    from engines.partition import train as train_module
    from engines.partition.data import BlockFile, JobData

    grid = np.mgrid[:32, :16, :16].astype(np.float32)
    labels = (np.sqrt(((grid - 8) ** 2).sum(0)) < 6).astype(np.uint8)
    np.save(Path(folder) / "image.npy", labels.astype(np.float32))
    np.save(Path(folder) / "labels.npy", labels)
    files = BlockFile(Path(folder) / "image.npy"), BlockFile(Path(folder) / "labels.npy")
    data = JobData(*files, (32, 16, 16), np.eye(4), 0.0, 1.0, (0, 1))
    config = {"model": "unet", "width": 2, "in_channels": 1, "classes": 2, "mesh": "1x1x1", "steps": 10,
              "lr": 0.01, "crop": [32, 16, 16], "seed": 0, "image": "-", "labels": "-",
              "image_shape": [32, 16, 16], "mean": 0.0, "std": 1.0, "multiple": [8, 8, 8]}
    real_loss, calls = train_module.dice_ce_loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before the next line
            os.kill(os.getpid(), signal.SIGKILL)
        return real_loss(*args, **kwargs)

    train_module.dice_ce_loss = loss
    plan = train_module.TrainPlan(config, data, (1, 1, 1), 1, (32, 16, 16), None)
    train_module.train(plan, StopRequest().install(), torch.device("cpu"), checkpoint_every=0,
                       checkpoint_minutes=0, out=folder, predict=False)


def test_a_stop_in_the_middle_of_a_step_checkpoints_the_last_finished_step_at_once(tmp_path, ranks):
    with pytest.raises(RuntimeError, match="died"):
        ranks(1).run(stopped_mid_step, str(tmp_path))
    assert load_checkpoint(tmp_path).step == 2


@pytest.mark.dist
def test_on_two_machines_a_rank_0_that_cannot_prepare_stops_the_other_machine_at_once(tmp_path, volumes):
    """Two torchrun agents, as on two nodes (here both on 127.0.0.1): rank 0 refuses the labels, and the
    other node's rank, which waits for OUT/data, hears why through torchrun's store instead of waiting."""
    image, _ = volumes
    soft = _write(tmp_path / "soft.nii.gz", np.full((32, 24, 20), 0.5, np.float32))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--max-restarts", "0",
            "-m", "engines.partition.train", *_train_args((image, soft), tmp_path / "out")[1:]]
    started = time.monotonic()
    nodes = [subprocess.Popen(argv, cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    try:
        errors = [node.communicate(timeout=120)[1] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert time.monotonic() - started < 60  # not the hour a waiting rank would give rank 0
    assert all(node.returncode != 0 for node in nodes)
    assert any("rank 0 could not prepare the training volumes" in e and "soft.nii.gz" in e for e in errors)


def _failure(tmp_path, rank: int, exitcode: int, message: str | None = None, timestamp: int = 100):
    """A torchrun ProcessFailure, with the error file a rank writes when it raised `message`."""
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    error_file = tmp_path / f"error{rank}.json"
    if message is not None:
        error_file.write_text(json.dumps({"message": {"message": message, "extraInfo": {
            "py_callstack": "Traceback ...", "timestamp": str(timestamp)}}}))
    return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(error_file))


@pytest.mark.parametrize(("failures", "expected"), [
    # rank 1 killed; torchrun then SIGTERMs rank 0: the kill is the cause
    ({0: (-signal.SIGTERM, None), 1: (-signal.SIGKILL, None)},
     "rank 1 died (SIGKILL); rank 0 died (SIGTERM)"),
    # rank 1 raised; rank 0 lost its connection to it: the error is the cause, in full
    ({0: (1, "RuntimeError: [gloo] Connection closed by peer [127.0.0.1]:1234"),
      1: (1, "ValueError: weights cannot be saved")},
     "rank 1 failed: ValueError: weights cannot be saved; rank 0 failed: RuntimeError: [gloo] Connection "
     "closed by peer"),
    # rank 1 hung (SIGSTOP); rank 0 timed out waiting for it, and torchrun had to SIGKILL rank 1: the hung
    # rank first, the timeout after it
    ({0: (1, "RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Timed out waiting "
             "45000ms for send operation to complete"), 1: (-signal.SIGKILL, None)},
     "rank 1 stopped answering (SIGKILL: torchrun ended it after the others timed out waiting for it); "
     "rank 0 failed: RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc"),
    # rank 0 raised and recorded it, then torchrun's SIGTERM ended it: the message is kept
    ({0: (-signal.SIGTERM, "ValueError: weights cannot be saved"),
      1: (1, "RuntimeError: Connection closed by peer")},
     "rank 0 failed: ValueError: weights cannot be saved; rank 1 failed: RuntimeError: Connection closed"),
])
def test_the_job_error_names_the_cause_first(tmp_path, failures, expected):
    from engines.partition.cli import describe_failures

    message = describe_failures({rank: _failure(tmp_path, rank, code, text)
                                 for rank, (code, text) in failures.items()})
    assert message.startswith(expected), message


def test_a_stop_while_preparing_exits_0_before_any_rank_starts(tmp_path, volumes, capsys, monkeypatch):
    """SIGTERM before torchrun runs (the volumes being prepared) ends the job at once with exit 0, even
    when it lands in code that catches every Exception."""
    import torch.distributed.launcher.api as launcher

    import engines.partition.train as train_module

    def preparing(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Exception:  # a broad handler on the way (readers have them) must not swallow the stop
            pass
        raise AssertionError("preparing went on after the stop")

    def launch(*args, **kwargs):
        raise AssertionError("ranks started after the stop")

    monkeypatch.setattr(train_module, "plan_training", preparing)
    monkeypatch.setattr(launcher, "elastic_launch", launch)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert main.main(_train_args(volumes, tmp_path / "o", "--steps", "1")) == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    assert "stopped before the ranks started" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["message"].startswith("stopped before the ranks started")


@pytest.mark.parametrize(("shape", "model", "crop", "fragment", "fine"), [
    ((40, 40, 40), "basicunet", "16,16,16", "--crop 16,16,16 is the network's whole downsampling (16x16x16)",
     "32,16,16"),
    ((40, 40, 40), "unet", "8,8,8", "use at least 16 along one axis", "8,16,8"),
    ((10, 12, 9), "basicunet", "full", "the volume, padded to 16x16x16, is", None),
])
def test_a_crop_that_leaves_one_voxel_at_the_bottom_is_refused(shape, model, crop, fragment, fine):
    """Instance normalisation fails on a 1-voxel bottleneck in training ("more than 1 spatial element")."""
    from engines.partition.layout import check_layout
    from engines.partition.models import MULTIPLES

    with pytest.raises(InputError, match=re.escape(fragment)):
        check_layout(shape, model=model, mesh="1x1x1", crop=crop)
    if fine is not None:
        check_layout(shape, model=model, mesh="1x1x1", crop=fine)  # two voxels at the bottom
    m = MULTIPLES[model]
    check_layout((40, 40, 40), model=model, mesh="2x1x1", crop=f"{2 * m},{m},{m}")  # a split mesh: two too


def test_a_rank_run_by_torchrun_itself_says_bad_input_in_one_line(tmp_path, volumes, capsys, monkeypatch):
    """The README's multi-node form starts `engines.partition.train` under torchrun directly: a missing file
    is one line per rank (exit 2), not a traceback each."""
    from engines.partition import train

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = _train_args(volumes, tmp_path / "o")[1:]  # the rank's own options, without "train-seg"
    argv[argv.index("--image") + 1] = str(tmp_path / "missing.nii.gz")
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert f"tessera: rank 1: {tmp_path / 'missing.nii.gz'}: no such file" in err and "Traceback" not in err
