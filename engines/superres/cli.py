"""CLI: `sr` (super-resolve a volume or image), `sr-bench` (held-out evaluation), `sr-train` (training).

Heavy modules are imported inside the commands so `main.py --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from engines.devices import DEVICES, torch_device
from engines.errors import InputError
from engines.files import make_output_folder, refuse_overwrite

# sr-train flags that override the config (flag name = TrainConfig field with '-' for '_').
_TRAIN_FLAGS: dict[str, tuple[type, str]] = {
    "name": (str, "model name: writes NAME.safetensors/.json (and NAME_gan.* after a GAN stage)"),
    "n_resblocks": (int, "residual blocks of the feature extractor (default 16)"),
    "n_feats": (int, "feature channels (default 64)"),
    "mlp_hidden": (int, "hidden units of the Pos2Weight MLP (default 256)"),
    "init": (str, "start from this model (shipped name or .safetensors path)"),
    "data": (str, "'mni152' (default), a volume file, or a .npy array (I, J, K)"),
    "steps_l1": (int, "steps of the L1 stage"),
    "steps_gan": (int, "steps of the GAN + perceptual stage (0 = none)"),
    "batch_size": (int, "patches per step"),
    "lr_patch": (int, "low-resolution patch side"),
    "lr": (float, "learning rate of the L1 stage"),
    "lr_gan": (float, "generator learning rate of the GAN stage"),
    "w_adv": (float, "adversarial loss weight"),
    "w_perceptual": (float, "perceptual (feature-matching) loss weight"),
    "p_kspace": (float, "probability of the k-space degradation per batch"),
    "seed": (int, "random seed"),
    "threads": (int, "CPU threads (torch.set_num_threads)"),
    "device": (str, "cpu, cuda or auto"),
    "checkpoint_every": (int, "steps between checkpoints"),
    "log_every": (int, "steps between progress events"),
    "eval_every": (int, "steps between validation metric events"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sr", help="super-resolve every slice of a volume (or a 2D image) at any scale in (1, 4]",
        description="Super-resolve each slice of INPUT in the chosen plane with the meta-upscale network "
                    "and write a NIfTI (or PNG for a 2D PNG input) with the new spacing; the field of view "
                    "is kept.",
        epilog="example: python main.py sr scan.nii.gz --scale 2.5 --plane axial --out scan_sr.nii.gz",
    )
    p.add_argument("input", help="volume (NIfTI, DICOM folder, NRRD, ...) or 2D image "
                                 "(one-slice NIfTI/DICOM, PNG)")
    p.add_argument("--scale", type=float, required=True,
                   help="scale along x (and y unless --scale-y), in (1, 4]")
    p.add_argument("--scale-y", type=float, help="scale along y (the plane's vertical axis) if different")
    p.add_argument("--plane", choices=("axial", "coronal", "sagittal"), default="axial",
                   help="plane of the slices (axial = the first two RAS axes); ignored for a PNG")
    p.add_argument("--model", default="sr_light",
                   help="model name in resources/models (sr_light, sr_full, ...) or a .safetensors path")
    p.add_argument("--out", required=True, help="output file (.nii, .nii.gz; .png for a PNG input)")
    p.add_argument("--nan-fill", type=float, help="replace NaNs by this value instead of refusing the input")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu (default), cuda, or auto (cuda when "
                   "torch sees a GPU)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--progress", action="store_true",
                   help="print JSON-lines events (start, progress per slice, done) for the GUI's job runner; "
                        "SIGTERM stops between slices without writing OUT")
    p.set_defaults(func=run_sr)

    b = subparsers.add_parser(
        "sr-bench", help="PSNR/SSIM of super-resolution vs bicubic and nearest on held-out MNI slices",
        description="Evaluate on the held-out axial slab of the MNI152 T1 at scales 1.5..4 (PSNR, SSIM on "
                    "the brain and the whole slice, data_range 1 after normalisation), and time a 256x256 "
                    "slice at x2.",
        epilog="example: python main.py sr-bench --quick --json",
    )
    b.add_argument("--model", default="sr_light", help="L1 model (default sr_light)")
    b.add_argument("--gan", help="GAN model (default MODEL_gan when it exists)")
    b.add_argument("--degradation", choices=("bicubic", "kspace"), default="bicubic")
    b.add_argument("--scales", type=float, nargs="+", default=[1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    b.add_argument("--quick", action="store_true", help="3 held-out slices instead of all 20 (every scale)")
    b.add_argument("--seed", type=int, default=0, help="seed (timing inputs)")
    b.add_argument("--threads", type=int, default=2, help="CPU threads for the timing")
    b.add_argument("--json", action="store_true", help="print one JSON document")
    b.set_defaults(func=run_bench)

    t = subparsers.add_parser(
        "sr-train", help="train (or fine-tune / adapt) a super-resolution model; JSON-lines progress",
        description="Train MetaSR: L1 warm-up then optional GAN + perceptual stage, on MNI152 patches from "
                    "three planes (held-out slab excluded) or on your own scan (--adapt). Prints JSON-lines "
                    "events; SIGTERM checkpoints and exits 0; --resume continues.",
        epilog="examples:\n"
               "  python main.py sr-train --config resources/models/sr_light.json --out runs/sr_light\n"
               "  python main.py sr-train --adapt scan.nii.gz --init sr_light --out runs/adapted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--config", help="JSON settings, or a model card (reproduces that model)")
    t.add_argument("--out", required=True, help="output folder (weights, cards, checkpoint/)")
    t.add_argument("--adapt", metavar="SCAN",
                   help="fine-tune on SCAN's own slices (self-supervised, no held-out slab; "
                        "default --init sr_light)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    for field, (kind, text) in _TRAIN_FLAGS.items():
        t.add_argument("--" + field.replace("_", "-"), type=kind, help=text)
    t.set_defaults(func=run_train)


# -- sr-train ------------------------------------------------------------------------------------------
def train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig from --config, --adapt and the override flags."""
    from engines.superres.train import TrainConfig, saved_config

    raw: dict[str, Any] = {}
    if args.resume and not args.config and not args.adapt:  # the run's own settings, then the flags
        raw = saved_config(args.out) or {}
    if args.config:
        try:
            with open(args.config) as fh:
                raw = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read the config: {exc}", args.config) from None
        if not isinstance(raw, dict):
            raise InputError("the config must be a JSON object", args.config)
        raw = TrainConfig.from_dict(raw).to_dict() if "training" in raw else raw
    if args.adapt:
        base = args.init or raw.get("init") or "sr_light"
        raw.update(data=args.adapt, holdout=None, init=base, steps_gan=0,
                   name=raw.get("name") if args.config else f"{Path(base).stem}_adapted")
        raw.setdefault("steps_l1", 300)
        raw.setdefault("lr", 1e-4)
    for field in _TRAIN_FLAGS:
        value = getattr(args, field)
        if value is not None:
            raw[field] = value
    try:
        return TrainConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad training settings: {exc}", args.config) from None


def run_train(args: argparse.Namespace) -> int:
    from engines.events import StopRequest, emit
    from engines.superres.train import MNI152, train

    cfg = train_config(args)
    own_command = sys.argv[1:2] == ["sr-train"]
    command = "python main.py " + shlex.join(["sr-train", *sys.argv[2:]]) if own_command else ""
    try:
        if cfg.data != MNI152:
            refuse_overwrite(cfg.data, args.out, folder=True)
        make_output_folder(args.out)
        train(cfg, args.out, resume=args.resume, command=command, stop=StopRequest().install())
    except InputError as exc:
        emit("error", message=str(exc))
        raise
    return 0


# -- sr ------------------------------------------------------------------------------------------------
class _Stopped(Exception):
    """SIGTERM arrived during `sr --progress`."""


def run_sr(args: argparse.Namespace) -> int:
    from engines.events import StopRequest, emit
    from engines.superres.geometry import check_scales
    from engines.superres.infer import (
        check_nan_fill,
        check_output_path,
        read_input,
        super_resolve_volume,
        write_output,
    )

    sx = args.scale
    sy = args.scale if args.scale_y is None else args.scale_y
    check_scales(sx, sy)
    check_nan_fill(args.nan_fill)  # before any file is read
    device = torch_device(args.device)
    refuse_overwrite(args.input, args.out)
    on_slice = None
    if args.progress:
        stop = StopRequest().install()

        def on_slice(done: int, total: int) -> None:
            emit("progress", step=done, total=total)
            if stop:
                raise _Stopped

    volume, is_image = read_input(args.input)
    check_output_path(args.out, is_image=is_image)
    if args.progress:
        emit("start", input=args.input, output=args.out, scale_x=sx, scale_y=sy, model=args.model)
    try:
        result = super_resolve_volume(volume, sx, sy, plane=None if is_image else args.plane,
                                      model=args.model, nan_fill=args.nan_fill, device=device,
                                      on_slice=on_slice)
    except _Stopped:
        emit("done", stopped=True, outputs=[])
        return 0
    except InputError as exc:
        if args.progress:
            emit("error", message=str(exc))
        raise
    write_output(result, args.out, is_image=is_image)
    summary = {"input": args.input, "output": args.out, "model": args.model, "scale_x": sx, "scale_y": sy,
               "plane": "image" if is_image else args.plane, "shape_in": list(volume.shape),
               "shape_out": list(result.shape), "spacing_out": [round(float(v), 6) for v in result.spacing],
               "warnings": volume.warnings + result.warnings}
    if args.progress:
        emit("done", stopped=False, outputs=[args.out], **summary)
    elif args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.input} {tuple(volume.shape)} -> {args.out} {tuple(result.shape)}, spacing "
              f"{tuple(summary['spacing_out'])} mm ({args.model}, x{sx:g} / y{sy:g})")
        for w in summary["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
    return 0


# -- sr-bench ------------------------------------------------------------------------------------------
def run_bench(args: argparse.Namespace) -> int:
    from engines.superres.bench import format_table, run_benchmark
    from engines.superres.geometry import check_scales

    for scale in args.scales:
        check_scales(scale, scale)  # and run_benchmark checks each can be scored, before it loads anything
    result = run_benchmark(model=args.model, gan=args.gan, scales=args.scales, quick=args.quick,
                           degradation=args.degradation, seed=args.seed, threads=args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
    return 0
