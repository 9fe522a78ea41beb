"""On one CUDA GPU: one rank of the partitioned code against plain MONAI, and the ranks 512^3 and 1024^3 need.

    .venv/bin/python benchmarks/partition_gpu.py                  # 256^3 and 448^3, the README table
    .venv/bin/python benchmarks/partition_gpu.py --sizes 128,192  # a quick run on a small GPU

Needs CUDA (it refuses clearly without). Issue 3's target: on one rank the partitioned code costs at
most 5 % more time and memory than plain MONAI.

Every variant trains MONAI BasicUNet, features (16, 16, 32, 64, 128, 16), 4 classes, float32, Adam, on the
same analytic phantom as benchmarks/partition_memory.py, one sample per step, in a one-rank NCCL group:
- "monai": the network as built, MONAI's DiceCELoss(to_onehot_y=True, softmax=True);
- "partitioned": partition_model(network, 1x1x1 mesh) and the partitioned Dice+CE loss
  (engines.partition.loss): one rank of the partitioned code, whose one block is the whole volume (so its
  convolutions pad as usual and its norms take local statistics) - the issue's <= 5 % comparison;
- "block paths": the same on a one-block mesh that takes the code paths of a block inside a larger mesh:
  every convolution exchanges halos on every axis (zero slabs, there being no neighbours) and convolves
  unpadded, the instance norms compute global statistics with their all-reduces. What a rank of a real
  mesh runs except the neighbours' data itself, so its memory is what the capacity fit uses.
Memory is torch.cuda.max_memory_allocated during the steps (weights and the volume included; the CUDA
context and the allocator's cached slack are not); time is the median step after the first, synchronised.
A size that runs out of memory is recorded as such.

From the "block paths" peaks at the measured sizes, engines.partition.capacity fits fixed + per-voxel
memory and prints the ranks (and mesh) 512^3 and 1024^3 volumes need on 80 GB and 141 GB GPUs, keeping
10 % of each GPU free. (The JSON is written even when fewer than two sizes fit, without the fit.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from time import monotonic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.partition_memory import CLASSES, WIDTH, phantom_block, train_steps  # noqa: E402
from engines.partition.capacity import GIB, GPUS, MemoryModel, ranks_needed  # noqa: E402
from engines.partition.mesh import SpatialMesh  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "partition_gpu.json"
TARGET_OVERHEAD = 0.05
TARGET_SIZES = (512, 1024)
VARIANTS = ("monai", "partitioned", "block paths")
FIT_VARIANT = "block paths"  # the per-voxel memory of a block inside a mesh
DEVICE = "cuda"


class BlockPathsMesh(SpatialMesh):
    """A one-block mesh that takes a split block's code paths: every convolution exchanges halos on every
    axis (zero slabs: no neighbours) and convolves unpadded, the norms all-reduce global statistics.
    It computes exactly what the plain network does (tests/engines/partition/test_block_paths.py)."""

    split_axes = (0, 1, 2)


def _case(variant: str, size: int, steps: int, seed: int) -> dict:
    """Train `steps` steps of one variant at size^3 on the current GPU; peak memory and step time."""
    import torch
    from monai.losses import DiceCELoss

    from engines.partition.convert import partition_model
    from engines.partition.models import build_model

    device = torch.device(DEVICE)
    torch.manual_seed(seed)
    net = build_model("basicunet", out_channels=CLASSES, width=WIDTH).to(device)
    mesh = BlockPathsMesh((1, 1, 1)) if variant == FIT_VARIANT else SpatialMesh((1, 1, 1))
    if variant != "monai":
        net = partition_model(net, mesh, inplace=True)
    image, labels = phantom_block((size,) * 3, (slice(0, size),) * 3, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    try:
        if variant != "monai":
            times = train_steps(net, optimizer, image, labels, mesh, steps,
                                synchronize=torch.cuda.synchronize)
        else:
            loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
            times = _monai_steps(net, optimizer, image, labels, loss_fn, steps)
        result = {"peak_bytes": torch.cuda.max_memory_allocated(),
                  "step_s": statistics.median(times[1:] or times), "step_s_all": [round(t, 4) for t in times]}
    except torch.cuda.OutOfMemoryError:
        result = {"peak_bytes": None, "step_s": None, "oom": True}
    except Exception as exc:  # recorded: one failed case keeps the others
        result = {"peak_bytes": None, "step_s": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    del net, optimizer, image, labels
    torch.cuda.empty_cache()
    return {"variant": variant, "size": size, **result}


def _monai_steps(net, optimizer, image, labels, loss_fn, steps: int) -> list[float]:
    """The plain MONAI training step, timed like partition_memory.train_steps."""
    import time

    import torch

    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(image), labels).backward()
        optimizer.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def capacity_table(model: MemoryModel, sizes: tuple[int, ...] = TARGET_SIZES) -> list[dict]:
    """Ranks (and mesh) each volume size needs on each GPU class under `model` (None: no mesh fits)."""
    rows = []
    for size in sizes:
        for gpu, capacity in GPUS.items():
            found = ranks_needed((size,) * 3, model, capacity)
            rows.append({"size": size, "gpu": gpu, "ranks": None if found is None else found[0],
                         "mesh": None if found is None else "x".join(map(str, found[1])),
                         "per_rank_gib": None if found is None
                         else round(model.per_rank_bytes((size,) * 3, found[1]) / GIB, 1)})
    return rows


def markdown(cases: list[dict], model: MemoryModel | None, rows: list[dict], gpu_name: str,
             conv_precision: str) -> str:
    """The README tables: time and memory per size and variant (overhead against MONAI), then ranks needed."""
    def cell(case: dict, key: str, plain: dict) -> str:
        if failed := _failed(case):
            return failed
        value = case[key] / (GIB if key == "peak_bytes" else 1)
        text = f"{value:.1f}" if key == "peak_bytes" else f"{value:.2f}"
        if case is plain or _failed(plain):
            return text
        return f"{text} ({case[key] / plain[key] - 1:+.1%})"

    lines = ["| size | " + " | ".join(f"{v} step (s)" for v in VARIANTS) + " | "
             + " | ".join(f"{v} peak (GiB)" for v in VARIANTS) + " |",
             "|---|" + "---|" * (2 * len(VARIANTS))]
    for size in sorted({c["size"] for c in cases}):
        row = {v: next(c for c in cases if c["size"] == size and c["variant"] == v) for v in VARIANTS}
        plain = row["monai"]
        lines.append(f"| {size}³ | " + " | ".join(cell(row[v], "step_s", plain) for v in VARIANTS) + " | "
                     + " | ".join(cell(row[v], "peak_bytes", plain) for v in VARIANTS) + " |")
    lines.append(f"\nOne {gpu_name}; BasicUNet (16, 16, 32, 64, 128, 16), 4 classes, float32 "
                 f"(cuDNN convolutions: {conv_precision}), Adam; "
                 f"peak = torch.cuda.max_memory_allocated; (+x %) = against MONAI, target <= "
                 f"{TARGET_OVERHEAD:.0%} for 'partitioned'.")
    if model is None:
        return "\n".join(lines)
    lines += [f"Fit of '{FIT_VARIANT}': {model.fixed_bytes / GIB:.2f} GiB + "
              f"{model.bytes_per_voxel:.0f} bytes per voxel of a rank's block.\n",
              "| volume | GPU | ranks needed | mesh | predicted peak per rank (GiB) |",
              "|---|---|---|---|---|"]
    for row in rows:
        peak = "-" if row["per_rank_gib"] is None else row["per_rank_gib"]
        lines.append(f"| {row['size']}³ | {row['gpu']} | {row['ranks'] or 'none fits'} | "
                     f"{row['mesh'] or '-'} | {peak} |")
    return "\n".join(lines)


def _failed(case: dict) -> str | None:
    """What a case has instead of numbers ("OOM", "error", "skipped"), or None."""
    if case.get("oom"):
        return "OOM"
    return "error" if case.get("error") else "skipped" if case.get("skipped") else None


def _results(args: argparse.Namespace, argv: list[str] | None, cases: list[dict]
             ) -> tuple[dict, MemoryModel | None]:
    """The JSON document for the cases so far, and the memory fit when two sizes of FIT_VARIANT ran."""
    import torch

    measured = [c for c in cases if c["variant"] == FIT_VARIANT and not _failed(c)]
    model = rows = None
    if len({c["size"] for c in measured}) >= 2:
        model = MemoryModel.fit([c["size"] ** 3 for c in measured], [c["peak_bytes"] for c in measured])
        rows = capacity_table(model)
    command = "python benchmarks/partition_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return {
        "benchmark": "partition_gpu", "command": command.strip(), "gpu": torch.cuda.get_device_name(),
        "gpu_bytes": torch.cuda.get_device_properties(0).total_memory, "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(), "conv_fp32_precision": _conv_precision(),
        "python": platform.python_version(), "steps": args.steps, "seed": args.seed,
        "target_overhead": TARGET_OVERHEAD, "cases": cases,
        "fit": None if model is None else {"fixed_bytes": model.fixed_bytes,
                                           "bytes_per_voxel": model.bytes_per_voxel},
        "ranks_needed": rows,
    }, model


def _conv_precision() -> str:
    """How cuDNN runs float32 convolutions here: "tf32" (torch's default on GPUs that have it) or "ieee"."""
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return str(conv.fp32_precision)
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,448", help="volume edges to measure (default 256,448)")
    parser.add_argument("--steps", type=int, default=4, help="steps per case; the first is not timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no case after this many seconds (the rest are recorded as skipped)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("partition_gpu.py needs a CUDA GPU and a CUDA build of torch; this machine has none "
              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Run "
              "benchmarks/partition_memory.py for the CPU benchmark.", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(set(sizes)) < 2 or any(s % 16 for s in sizes):
        parser.error("--sizes needs two or more different multiples of 16")
    import torch.distributed as dist

    started = monotonic()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cases: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:  # a one-rank NCCL group: the code path of a real run
        store = dist.FileStore(str(Path(tmp) / "store"), 1)
        dist.init_process_group("nccl", store=store, rank=0, world_size=1)
        try:
            for size in sizes:
                for variant in VARIANTS:
                    if args.budget_s is not None and monotonic() - started > args.budget_s:
                        cases.append({"variant": variant, "size": size, "peak_bytes": None, "step_s": None,
                                      "skipped": f"past --budget-s {args.budget_s:g}"})
                    else:
                        cases.append(_case(variant, size, args.steps, args.seed))
                    print(f"{variant} {size}^3: {cases[-1]}", file=sys.stderr, flush=True)
                    # written after every case: a run cut short keeps what it measured
                    args.out.write_text(json.dumps(_results(args, argv, cases)[0], indent=1) + "\n")
        finally:
            dist.destroy_process_group()
    result, model = _results(args, argv, cases)
    print(markdown(cases, model, result["ranks_needed"] or [], result["gpu"], result["conv_fp32_precision"]))
    print(f"\ncommand: {result['command']}\nresults: {args.out}")
    if model is None:
        print(f"fewer than two sizes ran in the {FIT_VARIANT!r} variant: no per-voxel fit and no "
              f"ranks-needed table; try smaller --sizes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
