"""CLI: `partition-check` (the partitioned-vs-whole self-test) and `train-seg` (the training job)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from engines.devices import DEVICES, torch_device
from engines.errors import InputError
from engines.events import StopRequest, emit
from engines.files import NIFTI_SUFFIXES, check_output, refuse_overwrite, same_file
from engines.partition.checkpoint_files import OPTIMIZER, saved_state
from engines.partition.job_lock import UNDER_LAUNCHER, JobFolder, job_folder
from engines.partition.models import MODELS

CHECK_EPILOG = """example:
  python main.py partition-check --ranks 4 --mesh 2x2x1 --model unet --dtype float64 --json

Builds the model (tiny widths) on every rank, runs it partitioned over the mesh and whole on one rank, and
compares output, loss, input gradient, every parameter gradient and the weights after five SGD steps
(rtol 1e-4 / atol 1e-5 in float32, 1e-9 in float64). Exit 0 only when all agree. In float32 a voxel whose
pre-activation rounds across a LeakyReLU's kink can exceed the tolerance (reported as kink_flips, with
kink_margin the largest such |pre-activation|): then try --dtype float64, which checks exactly.
"""

TRAIN_EPILOG = """example (2 ranks on this machine, CPU):
  python main.py train-seg --image t1.nii.gz --labels tissue.nii.gz --ranks 2 --mesh 2x1x1 \\
      --model basicunet --steps 200 --lr 1e-3 --crop 96,96,96 --out runs/brain

Prints JSON-lines events (start, progress, metric, checkpoint, done, error). Checkpoints every 5 minutes
(--checkpoint-minutes) and at the end. SIGTERM or Ctrl-C, or the launcher's death: the last finished step
is checkpointed at once, the ranks finish the step, checkpoint it and exit 0; --resume continues from
OUT/checkpoint. At the end the whole volume is predicted (partitioned, in windows if it does not fit) into
OUT/prediction.nii.gz. The checked, normalised, padded volumes go to OUT/data/ first (reused while the
files are unchanged); each rank reads only its blocks from there.

several machines: run this on every node (same endpoint; --ranks = nodes x ranks per node; OUT on a
folder every node sees: rank 0 prepares OUT/data/ there while the others wait):
  python -m torch.distributed.run --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
      --rdzv-endpoint node0.example:29500 -m engines.partition.train \\
      --image t1.nii.gz --labels tissue.nii.gz --ranks 8 --mesh 2x2x2 --crop full --out runs/big
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "partition-check", help="check a partitioned MONAI network against the whole-volume one",
        description="Self-test of spatial partitioning on this machine (gloo on CPU, NCCL on GPUs).",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--ranks", type=int, required=True, help="processes to start")
    check.add_argument("--mesh", default="2x1x1", help="blocks along D, H, W, optionally xREPLICAS")
    check.add_argument("--model", choices=MODELS, default="basicunet")
    check.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    check.add_argument("--width", type=int, default=2, help="channels of the first level (default 2)")
    check.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--timeout", type=float, default=600, help="seconds before giving up (default 600)")
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(func=run_check)

    from engines.partition.train import add_arguments

    train = subparsers.add_parser(
        "train-seg", help="train a 3D segmentation network partitioned over ranks (torchrun)",
        description="Spatially partitioned 3D U-Net training; prints JSON-lines job events.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(train)
    train.add_argument("--port", type=int, default=0,
                       help="rendezvous port on 127.0.0.1 (default: one the system picks)")
    train.set_defaults(func=run_train)

    predict = subparsers.add_parser(
        "predict-seg", help="label a volume with a train-seg checkpoint (MONAI sliding window, one process)",
        description="Apply a network trained by train-seg to a volume, turned (and resampled) to the grid it "
                    "was trained on, and write the labels as NIfTI on the image's own grid.",
        epilog="example:\n  python main.py predict-seg --run runs/brain --image other_t1.nii.gz "
               "--out other_tissue.nii.gz", formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("--run", required=True, help="train-seg's output folder (its checkpoint)")
    predict.add_argument("--image", required=True, help="volume to label (any format engines.io reads)")
    predict.add_argument("--out", required=True, help="labels file to write (.nii or .nii.gz)")
    predict.add_argument("--device", choices=DEVICES, default="auto",
                         help="auto: the first GPU when there is one")
    predict.add_argument("--no-resample", dest="resample", action="store_false",
                         help="label the image on its own voxels even when their size is more than 10 %% "
                              "off the training image's (by default it is labelled at the training voxel "
                              "size and the labels brought back; either way the labels are on its grid)")
    predict.set_defaults(func=run_predict)


def run_check(args: argparse.Namespace) -> int:
    from engines.partition.check import check_worker
    from engines.partition.launch import spawn
    from engines.partition.layout import parse_mesh
    from engines.partition.train import resolve_backend

    try:
        shape, replicas = parse_mesh(args.mesh)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    needed = shape[0] * shape[1] * shape[2] * replicas
    if args.ranks != needed:
        raise InputError(f"--ranks {args.ranks}, but mesh {args.mesh} needs {needed} ranks")
    for name, value, low in (("--width", args.width, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise InputError(f"{name} must be at least {low}; got {value}")
    if not args.timeout > 0:
        raise InputError(f"--timeout must be positive; got {args.timeout}")
    backend = resolve_backend(args.backend, args.ranks)
    result = spawn(check_worker, args.ranks, (args.model, shape, replicas, args.dtype, args.width, args.seed),
                   backend=backend, timeout_s=args.timeout)[0]
    result = {"ranks": result.pop("ranks"), "mesh": result.pop("mesh"), "model": result.pop("model"),
              "max_abs_err_output": result.pop("max_abs_err_output"),
              "max_rel_err_grad": result.pop("max_rel_err_grad"), "ok": result.pop("ok"), **result}
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "OK" if result["ok"] else "MISMATCH"
        print(f"{verdict}: {result['model']} on mesh {result['mesh']} ({result['ranks']} ranks, "
              f"{result['backend']}, {result['dtype']}): max |output error| "
              f"{result['max_abs_err_output']:.3g}, "
              f"max relative gradient error {result['max_rel_err_grad']:.3g}, weights after 5 SGD steps "
              f"{result['max_abs_err_weights']:.3g}")
        if result["failed"]:
            print("outside tolerance: " + ", ".join(result["failed"]))
        if result["kink_flips"] and not result["ok"]:
            print(f"{result['kink_flips']} activation input(s) within {result['kink_margin']:.2g} of the "
                  f"kink at 0 took the other branch than in the whole-volume run (rounding); check the "
                  f"partitioning exactly with --dtype float64")
    return 0 if result["ok"] else 1


def run_predict(args: argparse.Namespace) -> int:
    from engines.partition.predict import predict_volume

    refuse_overwrite(args.image, args.out)
    config = saved_state(args.run).get("config")
    for role in ("image", "labels"):  # stored absolute (older runs stored them as typed: left alone)
        trained = config.get(role) if isinstance(config, dict) else None
        if isinstance(trained, str) and os.path.isabs(trained) and same_file(trained, args.out):
            raise InputError(f"this is the {role} run {args.run} was trained on: predict-seg never writes "
                             "over it; choose another --out", args.out)
    check_output(args.out, NIFTI_SUFFIXES, "the labels file")
    device = torch_device(args.device)
    written, warnings = predict_volume(args.run, args.image, args.out, device=device,
                                       resample=args.resample)
    for warning in warnings:
        print(f"warning: {args.image}: {warning}", file=sys.stderr)
    print(f"labels written to {written}")
    return 0


# What a rank fails with when a collective times out (gloo, NCCL's watchdog, the c10d store): it waited for
# another rank that stopped answering.
_TIMEOUTS = ("Socket Timeout", "Timed out waiting", "timed out after",
             "Watchdog caught collective operation timeout")
# What a rank fails with when another rank vanished or hung first: a consequence.
_COLLATERAL = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "DistNetworkError",
               "DistBackendError", "remote process exited", "communicator was aborted", "failed to recv",
               *_TIMEOUTS)


def _failure_message(failure) -> str:
    """The last line of the error a rank recorded in its error file ("" when it wrote none: killed by a
    signal first; torch then makes up a "Signal 9 received" message of its own)."""
    recorded = failure.error_file_data.get("message")
    if isinstance(recorded, dict):  # what `record` writes: {"message": "Type: text", "extraInfo": {...}}
        recorded = recorded.get("message")
    if not isinstance(recorded, str) or recorded == "<NONE>" or not recorded.strip():  # torch's "no file"
        return ""
    return recorded.strip().splitlines()[-1]


def describe_failures(failures: dict) -> str:
    """One sentence naming the rank(s) that failed, causes before consequences: a rank's own error first, then
    a death by a signal other than SIGTERM (SIGKILL, SIGSEGV: the kernel's OOM killer, a crash), and last
    what followed (torchrun's SIGTERM to the survivors, their lost connections), each by time and rank."""
    def cause(item) -> tuple[int, int, int]:
        rank, failure = item
        message = _failure_message(failure)
        if message and not any(text in message for text in _COLLATERAL):
            kind = 0
        elif failure.exitcode < 0 and failure.exitcode != -signal.SIGTERM and not message:
            kind = 1
        else:
            kind = 2
        return kind, failure.timestamp, rank

    # A rank that stopped answering (hung, or stopped) is killed by torchrun after the others time out.
    timed_out = any(text in _failure_message(failure) for failure in failures.values() for text in _TIMEOUTS)
    parts = []
    for rank, failure in sorted(failures.items(), key=cause):
        message = _failure_message(failure)
        if message:
            parts.append(f"rank {rank} failed: {message}")
        elif failure.exitcode == -signal.SIGKILL and timed_out:
            parts.append(f"rank {rank} stopped answering (SIGKILL: torchrun ended it after the others timed "
                         "out waiting for it)")
        elif failure.exitcode < 0:
            parts.append(f"rank {rank} died ({failure.signal_name()})")
        else:
            parts.append(f"rank {rank} failed with exit code {failure.exitcode}: no message")
    return "; ".join(parts) + "; the job stopped"


class _StoppedBeforeLaunch(BaseException):
    """SIGTERM or SIGINT while the volumes were being prepared, before torchrun took the signals over (a
    BaseException, like KeyboardInterrupt, so that no `except Exception` on the way swallows it)."""


def _stop_before_launch() -> None:
    raise _StoppedBeforeLaunch  # from the signal handler: preparing stops where it is (it cleans up)


def run_train(args: argparse.Namespace) -> int:
    from engines.partition.layout import parse_mesh
    from engines.partition.train import check_out_outside_inputs, check_port_free, resolve_backend

    try:
        mesh_shape, replicas = parse_mesh(args.mesh)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    ranks = replicas * mesh_shape[0] * mesh_shape[1] * mesh_shape[2]
    backend = resolve_backend(args.backend, ranks)  # the quick checks first: preparing can take minutes
    if args.port != 0:
        check_port_free(args.port)
    check_out_outside_inputs(args)  # before the lock file is made there
    # No other job writes or trains in this folder meanwhile
    with job_folder(args.out, unlocked=lambda why: emit("log", message=f"warning: {why}")) as held:
        return _prepare_and_launch(args, ranks, backend, held)


def _prepare_and_launch(args: argparse.Namespace, ranks: int, backend: str, held: JobFolder) -> int:
    """Prepare OUT/data/ and run the ranks under torchrun (sharing the folder with them); the exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args
    from torch.distributed.run import parse_args as torchrun_args

    from engines.partition.launch import cpu_rank_env, cpu_threads_per_rank
    from engines.partition.train import plan_training, worker_argv

    stop = StopRequest().install()  # until torchrun installs its own handler
    stop.on_signal(_stop_before_launch)
    try:
        plan = plan_training(args)  # each rank reads its blocks from the OUT/data/ this prepares
        for warning in plan.data.warnings:  # what reading the files found (a 4D image: its first volume)
            emit("log", message=f"warning: {warning}")
        if plan.resume is not None and plan.resume.optimizer is None:
            emit("log", message=f"warning: {plan.resume.path} holds no optimizer state ({OPTIMIZER}): Adam "
                                "starts afresh from the saved weights, so the loss curve does not go on as "
                                "it was")
        if stop:  # the signal came where its exception could not surface
            raise _StoppedBeforeLaunch
        root = str(Path(__file__).resolve().parents[2])  # the ranks import `engines` from here
        os.environ.setdefault("OMP_NUM_THREADS", str(cpu_threads_per_rank(ranks)))
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        launch_args = torchrun_args([
            "--nnodes", "1", "--nproc-per-node", str(ranks), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{args.port}", "--max-restarts", "0", "--monitor-interval", "0.2",
            "-m", "engines.partition.train", *worker_argv(args)])
        config, entrypoint, entry_args = config_from_args(launch_args)
        emit("log", message=f"starting {ranks} ranks (torchrun)")
        held.share()  # each rank holds it too, until it exits (engines.partition.job_lock)
        os.environ[UNDER_LAUNCHER] = "1"
        with cpu_rank_env(backend):
            elastic_launch(config, entrypoint)(*entry_args)
    except _StoppedBeforeLaunch:
        emit("log", message="stopped before the ranks started: nothing trained, nothing to checkpoint")
        print("stopped before the ranks started", file=sys.stderr)
        return 0
    except ChildFailedError as exc:
        emit("error", message=describe_failures(exc.failures))
        return 1
    except SignalException as exc:
        # torchrun passed the signal on; the ranks checkpointed and exited.
        print(f"stopped by {signal.Signals(exc.sigval).name}", file=sys.stderr)
        return 0
    return 0
