"""The partitioned segmentation training job: one process per rank, started by torchrun.

`python main.py train-seg ...` checks everything, then runs torchrun, which starts this module's `main`
on every rank (or run it yourself: ``python -m torch.distributed.run ... -m engines.partition.train ARGS``).
Rank 0 prints the JSON-lines events of DESIGN §3. The volumes are prepared once in OUT/data/
(engines.partition.data); each step takes a random crop (the same on every rank of a replica), and each rank
reads just its block of it from there. SIGTERM or SIGINT (or the launcher's death): rank 0 checkpoints the
last finished step at once, every rank finishes its step, rank 0 checkpoints that, and all exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from engines.errors import InputError
from engines.events import StopRequest, emit
from engines.files import refuse_overwrite
from engines.label_maps import to_values
from engines.memory import peak_rss_mb
from engines.partition.checkpoint import Checkpoint, check_config, load_checkpoint, save_checkpoint
from engines.partition.checkpoint_files import checkpoint_dir, checkpoint_in
from engines.partition.convert import partition_model, required_multiple
from engines.partition.data import JobData, data_dir, prepare_data, wait_for_data
from engines.partition.grads import sum_gradients
from engines.partition.job_lock import UNDER_LAUNCHER, rank_share
from engines.partition.launch import cpu_threads_per_rank
from engines.partition.layout import check_volume, format_mesh, parse_mesh
from engines.partition.loss import dice_ce_loss, dice_scores
from engines.partition.mesh import SpatialMesh
from engines.partition.models import MODELS, build_model
from engines.partition.predict import predict_partitioned, prediction_window, trained_values, write_labels

PREDICTION = "prediction.nii.gz"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PREPARE_WAIT_S = 3600  # how long ranks other than 0 wait for rank 0 to prepare the volumes (direct torchrun)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's options, shared by `main.py train-seg` and this module's own entry point."""
    parser.add_argument("--image", required=True, help="image volume (any format engines.io reads)")
    parser.add_argument("--labels", required=True,
                        help="label volume on the image's grid: whole numbers, each value a class")
    parser.add_argument("--ranks", type=int, default=None,
                        help="processes in all (default: the mesh's blocks x replicas)")
    parser.add_argument("--mesh", default="2x1x1",
                        help="blocks along D, H, W, optionally xREPLICAS (2x2x1x2)")
    parser.add_argument("--model", choices=MODELS, default="basicunet")
    parser.add_argument("--width", type=int, default=8, help="channels of the first level (default 8)")
    parser.add_argument("--steps", type=int, default=100, help="train until this step (default 100)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--crop", default="full",
                        help="D,H,W of the random crop each step, or 'full' for the whole (padded) volume")
    parser.add_argument("--out", required=True, help="folder for checkpoints and the prediction")
    parser.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint")
    parser.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                        help="auto: NCCL when every local rank has a GPU, else gloo on CPU")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="also checkpoint every K steps (default 0: by time only, see below)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5,
                        help="also checkpoint when this long has passed since the last one, so a crash loses "
                             "at most that much (default 5; 0: only at the end, on stop and every K steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-predict", dest="predict", action="store_false",
                        help="skip predicting the whole volume at the end")
    parser.add_argument("--collective-timeout", type=float, default=45,
                        help="seconds a rank waits for a lost peer before failing (default 45)")


@dataclass
class TrainPlan:
    """A checked training job: settings, data, and the checkpoint to resume from."""

    config: dict[str, Any]  # what the checkpoint records; enough to rebuild the model and its inputs
    data: JobData  # the normalised image and the labels, padded to the block multiple, read block by block
    mesh_shape: tuple[int, int, int]
    data_parallel: int
    crop: tuple[int, int, int]
    resume: Checkpoint | None


def resolve_backend(name: str, local_ranks: int) -> str:
    """'gloo' or 'nccl' for `name` in auto/gloo/nccl; NCCL needs one GPU per local rank."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        return "nccl" if gpus >= local_ranks else "gloo"
    if name == "nccl" and gpus < local_ranks:
        raise InputError(f"--backend nccl needs one GPU per rank: {local_ranks} ranks on this node, "
                         f"{gpus} GPUs")
    return name


def check_port_free(port: int) -> None:
    """InputError if `port` is not a TCP port or something on this machine already listens on it
    (127.0.0.1)."""
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be 1..65535 (or left out); got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(f"port {port} is in use ({exc.strerror}); choose another --port or leave "
                             f"it out") from exc


def plan_training(args: argparse.Namespace, *, world_size: int | None = None, prepare: bool = True,
                  give_up: Callable[[], str | None] = lambda: None) -> TrainPlan:
    """Check every setting and the data before any rank starts; prepare the volumes in OUT/data/.

    With `prepare` False (ranks other than 0) wait for the process that prepares them instead, until
    `give_up()` gives a reason not to (see wait_for_data).

    Raises
    ------
    InputError
        Bad mesh or rank count, image/label shape or affine mismatch, labels that are not class
        indices, a crop the mesh and the model's downsampling do not divide, a checkpoint conflict.
    """
    try:
        mesh_shape, data_parallel = parse_mesh(args.mesh)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    needed = int(np.prod(mesh_shape)) * data_parallel
    ranks = needed if args.ranks is None else args.ranks
    if ranks != needed:
        raise InputError(f"--ranks {ranks}, but mesh {args.mesh} has {int(np.prod(mesh_shape))} blocks x "
                         f"{data_parallel} replicas = {needed} ranks")
    if world_size is not None and world_size != needed:
        raise InputError(f"mesh {args.mesh} needs {needed} ranks; torchrun started {world_size}")
    for name, value, low in (("--steps", args.steps, 1), ("--width", args.width, 1),
                             ("--checkpoint-every", args.checkpoint_every, 0), ("--seed", args.seed, 0)):
        if value < low:
            raise InputError(f"{name} must be at least {low}; got {value}")
    for name, value in (("--lr", args.lr), ("--collective-timeout", args.collective_timeout)):
        if not value > 0:
            raise InputError(f"{name} must be positive; got {value}")
    if not args.checkpoint_minutes >= 0:
        raise InputError(f"--checkpoint-minutes must be 0 or more; got {args.checkpoint_minutes}")

    _check_paths(args)
    multiple = required_multiple(build_model(args.model, out_channels=2, width=args.width))
    block = tuple(m * n for m, n in zip(multiple, mesh_shape, strict=True))
    # weights and optimizer state checked once: by the launcher, or by rank 0 when started by hand
    by_hand_first = prepare and not os.environ.get(UNDER_LAUNCHER)
    resume = _resume_checkpoint(args, check=world_size is None or by_hand_first)

    classes = None if resume is None else trained_values(resume.config)  # resumed: the network's classes

    def check(shape: tuple[int, ...], values: tuple[int, ...]) -> None:
        check_volume(shape, multiple, mesh_shape, args.mesh, args.crop)

    if prepare:
        data = prepare_data(args.image, args.labels, block, args.out, check, classes=classes)
    else:
        data = wait_for_data(args.image, args.labels, block, args.out, timeout_s=PREPARE_WAIT_S,
                             give_up=give_up, classes=classes)
    check(data.shape, data.values)  # again for volumes prepared earlier
    crop = check_volume(data.shape, multiple, mesh_shape, args.mesh, args.crop)
    config = {
        "model": args.model, "width": args.width, "in_channels": 1, "classes": data.classes,
        "values": list(data.values),
        "mesh": args.mesh, "steps": args.steps, "lr": args.lr, "crop": list(crop), "seed": args.seed,
        "image": os.path.abspath(args.image), "labels": os.path.abspath(args.labels),
        "image_shape": list(data.shape), "mean": data.mean, "std": data.std, "multiple": list(multiple),
        "affine": data.affine.tolist(),
    }
    return TrainPlan(config, data, mesh_shape, data_parallel, crop, resume)


def check_out_outside_inputs(args: argparse.Namespace) -> None:
    """InputError naming an input folder (a DICOM series) that OUT is, or lies in: the job would write its
    lock, prepared volumes and checkpoints into what it reads (and input folders are never written)."""
    out = Path(args.out).resolve()
    for path in (args.image, args.labels):
        if os.path.isdir(path) and (out == Path(path).resolve() or Path(path).resolve() in out.parents):
            raise InputError(f"--out {args.out} lies in this input folder, which the job reads and never "
                             "writes: choose an output folder outside it", path)


def _check_paths(args: argparse.Namespace) -> None:
    """The inputs exist, OUT is (or can be) a folder, and nothing the job writes there - the prediction, the
    prepared volumes, the checkpoints - is one of the inputs (say, an earlier run's prediction as labels),
    nor in an input folder."""
    for path in (args.image, args.labels):
        if not os.path.exists(path):
            raise InputError("no such file or folder", path)
    check_out_outside_inputs(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError("--out must be a folder for the job's files; this is a file", args.out)
    for path in (args.image, args.labels):
        refuse_overwrite(path, Path(args.out) / PREDICTION)
        for folder in (data_dir(args.out), checkpoint_dir(args.out)):
            refuse_overwrite(path, folder, folder=True)


def _resume_checkpoint(args: argparse.Namespace, *, check: bool) -> Checkpoint | None:
    if not args.resume:
        if checkpoint_in(args.out) is not None:  # OUT/checkpoint/, or the one a crash left mid-swap
            raise InputError("this folder already holds a checkpoint: pass --resume to continue it, or "
                             "choose another --out", args.out)
        return None
    checkpoint = load_checkpoint(args.out)
    saved = check_config(checkpoint, ("model", "width", "classes"))
    for key, value in (("model", args.model), ("width", args.width)):
        if saved.get(key) != value:
            raise InputError(f"the checkpoint was trained with {key} {saved.get(key)!r}, this run asks for "
                             f"{value!r}", checkpoint.path)
    if checkpoint.step >= args.steps:
        raise InputError(f"the checkpoint is at step {checkpoint.step} already; ask for more --steps",
                         checkpoint.path)
    if check:
        checkpoint.check_fits(build_model(args.model, out_channels=saved["classes"], width=args.width))
    return checkpoint


def _batch(plan: TrainPlan, mesh: SpatialMesh, step: int, device: torch.device
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """This rank's block of the step's crop: image (1, 1, d, h, w) float32, labels (1, 1, d, h, w) int64, and
    which of its voxels are the image's own (bool, same shape; None when all are): the crop is drawn from
    the volume padded to the block multiple, and the padding must count in neither loss nor Dice."""
    rng = np.random.default_rng([plan.config["seed"], step, mesh.replica])
    shape = plan.data.image.shape
    origin = [int(rng.integers(0, n - c + 1)) for n, c in zip(shape, plan.crop, strict=True)]
    inner = mesh.block_slices(plan.crop)
    region = tuple(slice(o + s.start, o + s.stop) for o, s in zip(origin, inner, strict=True))
    image = torch.from_numpy(plan.data.image.read(region))[None, None]
    labels = torch.from_numpy(plan.data.labels.read(region).astype(np.int64))[None, None]
    size = [s.stop - s.start for s in region]
    own = [max(0, min(s.stop, n) - s.start) for s, n in zip(region, plan.data.shape, strict=True)]
    mask = None
    if own != size:
        mask = torch.zeros(1, 1, *size, dtype=torch.bool)
        mask[0, 0, : own[0], : own[1], : own[2]] = True
        mask = mask.to(device)
    return image.to(device), labels.to(device), mask


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def _gather(values: list[float], device: torch.device) -> torch.Tensor:
    """(world, len(values)): every rank's values, on every rank."""
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    parts = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    return torch.stack(parts).cpu()


class _Saver:
    """Rank 0's checkpoints of the last finished step: at the usual points, and at once when the job is asked
    to stop in the middle of a step (from the signal handler), so that a step longer than the launcher
    waits before killing the ranks (torchrun: 30 s; the dock: 10 s) loses only itself."""

    def __init__(self, out: str, net: torch.nn.Module, optimizer: torch.optim.Optimizer, config: dict,
                 step: int) -> None:
        self.out, self.net, self.optimizer, self.config = out, net, optimizer, config
        self.finished = self.saved = step
        self._busy = False  # weights, optimizer state or the checkpoint files are being changed

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """The weights change within: a stop request waits for the end-of-step checkpoint instead."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def save(self) -> Path:
        """Checkpoint the last finished step (unless that is on disk already); the checkpoint folder."""
        with self.changing():
            if self.saved < self.finished:
                save_checkpoint(self.out, self.net, self.optimizer, self.finished, self.config)
                self.saved = self.finished
        return checkpoint_dir(self.out)

    def on_stop(self) -> None:
        """From the SIGTERM/SIGINT handler: save now, between two of the step's operations."""
        if self._busy or self.saved >= self.finished:
            return
        try:
            self.save()
        except Exception as exc:  # the end-of-step checkpoint may still come: say why this one failed
            print(f"checkpoint on stop failed: {exc}", file=sys.stderr)


def train(plan: TrainPlan, stop: StopRequest, device: torch.device, *, checkpoint_every: int,
          checkpoint_minutes: float, out: str, predict: bool) -> int:
    """Run the steps on this rank (the process group is up); rank 0 reports. Returns the exit code."""
    config = plan.config
    mesh = SpatialMesh(plan.mesh_shape, data_parallel=plan.data_parallel)
    leader = dist.get_rank() == 0
    torch.manual_seed(config["seed"])  # the same initial weights on every rank
    model = build_model(config["model"], out_channels=config["classes"], width=config["width"]).to(device)
    torch.manual_seed(config["seed"] + 1 + dist.get_rank())  # then each block its own dropout masks
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    step = 0
    if plan.resume is not None:
        plan.resume.load_weights(model)
        if plan.resume.optimizer is not None:
            optimizer.load_state_dict(plan.resume.optimizer)
            for group in optimizer.param_groups:  # Adam's moments carry on; the rate is this run's --lr
                group["lr"] = config["lr"]
        step = plan.resume.step
    net = partition_model(model, mesh, inplace=True)
    pids = [None] * dist.get_world_size()
    dist.all_gather_object(pids, os.getpid())
    if leader:
        emit("start", ranks=mesh.world_size, mesh=format_mesh(mesh.shape, mesh.data_parallel),
             model=config["model"], steps=config["steps"], first_step=step + 1, backend=dist.get_backend(),
             device=device.type, image_shape=config["image_shape"], crop=list(plan.crop),
             classes=config["classes"], values=trained_values(config), pids=pids)
    total = config["steps"]
    saved_at = time.monotonic()
    saver = _Saver(out, net, optimizer, config, step)
    if leader:
        stop.on_signal(saver.on_stop)
    while step < total:
        step += 1
        started = time.perf_counter()
        x, y, mask = _batch(plan, mesh, step, device)
        logits = net(x)
        loss = dice_ce_loss(logits, y, mesh, mask=mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sum_gradients(net, mesh)
        with saver.changing():
            optimizer.step()
            saver.finished = step
        dice = dice_scores(logits.detach(), y, mesh, mask)
        elapsed = time.perf_counter() - started
        status = _gather([float(loss.detach()), _peak_memory_mb(device), float(bool(stop))], device)
        stopping = bool(status[:, 2].max())
        if leader:
            emit("progress", step=step, total=total)
            emit("metric", step=step, loss=float(status[:, 0].mean()), dice=dice,
                 step_time_s=round(elapsed, 4), peak_mem_mb=[round(v, 1) for v in status[:, 1].tolist()])
            due = (checkpoint_every and step % checkpoint_every == 0) or (
                checkpoint_minutes and time.monotonic() - saved_at >= 60 * checkpoint_minutes)
            if stopping or step == total or due:
                emit("checkpoint", step=step, path=str(saver.save()))
                saved_at = time.monotonic()
        if stopping:
            if leader:
                emit("done", step=step, stopped=True, checkpoint=str(checkpoint_dir(out)), prediction=None)
            return 0
    labels = prediction = None
    if predict and mesh.replica == 0:
        optimizer.zero_grad(set_to_none=True)  # the memory goes to the windows
        block = [m * n for m, n in zip(config["multiple"], mesh.shape, strict=True)]
        window = prediction_window(net, plan.data.image, plan.crop, block, mesh, device)
        if leader:
            one_pass = all(w >= n for w, n in zip(window, plan.data.image.shape[-3:], strict=True))
            how = "in one pass" if one_pass else f"in windows of {format_mesh(window)} voxels"
            emit("log", message=f"predicting the whole volume {how}")
        labels = predict_partitioned(net, plan.data.image, window, mesh, device)
        # The replica's collectives are all done before any of its ranks leaves the group (NCCL tears
        # down per communicator), and a slow write of the labels below cannot time out a peer's collective.
        # (Other replicas predict nothing: they leave at once, never waiting out the prediction.)
        dist.barrier(group=mesh.spatial_group)
    if labels is not None:
        shape = config["image_shape"]
        own = to_values(labels[: shape[0], : shape[1], : shape[2]], trained_values(config))
        prediction = write_labels(own, plan.data.affine, Path(out) / PREDICTION)
    if leader:
        emit("done", step=step, stopped=False, checkpoint=str(checkpoint_dir(out)),
             prediction=None if prediction is None else str(prediction))
    return 0


def _stop_with_launcher() -> None:
    """Have the kernel send this rank SIGTERM (stop: finish the step, checkpoint, exit) when its launcher
    dies - say, the GUI killed a train-seg that took too long to stop - instead of training on, orphaned."""
    if not sys.platform.startswith("linux"):
        return
    launcher = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launcher:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _PreparationNews:
    """Rank 0 tells the others through torchrun's store whether it prepared the volumes, or why not, so a
    rank on another machine stops at once rather than wait for files that will never come. (Without
    torchrun's agent store the others only watch OUT/data/.)"""

    def __init__(self) -> None:
        self.key = f"tessera/prepared/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        self.store = None
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_ADDR" in os.environ:
            with contextlib.suppress(RuntimeError, ValueError, KeyError):
                self.store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                           is_master=False,
                                           timeout=datetime.timedelta(seconds=PREPARE_WAIT_S))

    def tell(self, failure: str) -> None:
        """Rank 0: "" when the volumes are ready, else what went wrong."""
        if self.store is not None:
            self.store.set(self.key, failure)

    def failure(self) -> str | None:
        """The other ranks: rank 0's failure, if it has told one."""
        if self.store is None or not self.store.check([self.key]):
            return None
        told = self.store.get(self.key).decode()
        return f"rank 0 could not prepare the training volumes: {told}" if told else None


def run_worker(args: argparse.Namespace) -> int:
    """One rank of the job, under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE set)."""
    stop = StopRequest().install()
    _stop_with_launcher()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    backend = resolve_backend(args.backend, local_ranks)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(cpu_threads_per_rank(local_ranks))
    # Before joining the group: rank 0 may take minutes preparing the volumes while the others wait.
    first = int(os.environ.get("RANK", 0)) == 0
    news = _PreparationNews()

    def give_up() -> str | None:
        return "stopped while waiting for rank 0 to prepare the training volumes" if stop else news.failure()

    try:
        # The folder stays held until this process exits; by hand (no launcher to say so) warn when it cannot
        if rank_share(args.out) is None and first and not os.environ.get(UNDER_LAUNCHER):
            emit("log", message="warning: this folder's file system cannot lock files, so nothing stops a "
                                "second job from using it meanwhile")
        plan = plan_training(args, world_size=int(os.environ.get("WORLD_SIZE", 1)), prepare=first,
                             give_up=give_up)
    except BaseException as exc:
        if first:
            news.tell(str(exc) or type(exc).__name__)
        raise
    if first:
        news.tell("")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.collective_timeout))
    try:
        return train(plan, stop, device, checkpoint_every=args.checkpoint_every,
                     checkpoint_minutes=args.checkpoint_minutes, out=args.out,
                     predict=args.predict)
    except BaseException as exc:
        # The error file first: tearing the group down lets the other ranks fail at once, and torchrun may
        # SIGTERM this rank before `record` (around main) writes it: the job would report the wrong cause.
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler

        get_error_handler().record_exception(exc)
        raise
    finally:
        dist.destroy_process_group()


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The command-line options that reproduce `args` for `main` (what torchrun passes each rank)."""
    argv = ["--image", args.image, "--labels", args.labels, "--mesh", args.mesh, "--model", args.model,
            "--width", str(args.width), "--steps", str(args.steps), "--lr", repr(args.lr),
            "--crop", args.crop, "--out", args.out, "--backend", args.backend,
            "--checkpoint-every", str(args.checkpoint_every),
            "--checkpoint-minutes", repr(args.checkpoint_minutes),
            "--seed", str(args.seed), "--collective-timeout", repr(args.collective_timeout)]
    if args.ranks is not None:
        argv += ["--ranks", str(args.ranks)]
    if args.resume:
        argv.append("--resume")
    if not args.predict:
        argv.append("--no-predict")
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of each rank: ``python -m engines.partition.train ARGS`` under torchrun."""
    from torch.distributed.elastic.multiprocessing.errors import record

    parser = argparse.ArgumentParser(
        prog="python -m engines.partition.train",
        description="One rank of the partitioned training job (run by torchrun).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return record(run_worker)(args)  # records the failure for torchrun (train-seg's error event reads it)
    except InputError as exc:  # bad input: one line, as from main.py, not a traceback per rank
        return _rank_error(str(exc), 2)
    except Exception as exc:
        if os.environ.get("TESSERA_DEBUG"):
            raise
        return _rank_error(f"{type(exc).__name__}: {exc} (set TESSERA_DEBUG=1 for the traceback)", 1)


def _rank_error(message: str, code: int) -> int:
    print(f"tessera: rank {os.environ.get('RANK', 0)}: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
