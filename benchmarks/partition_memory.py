"""Per-rank peak memory and step time of spatially partitioned training on CPU (gloo), 1, 2 and 4 ranks.

    .venv/bin/python benchmarks/partition_memory.py                                    # the README table
    .venv/bin/python benchmarks/partition_memory.py --size 64 --steps 2                 # a quick smoke run

Issue 3's targets at 128^3: the per-rank peak at 4 ranks <= 0.35 x the 1-rank peak, at 2 ranks <= 0.6 x.

Every case trains the same network - MONAI BasicUNet, features (16, 16, 32, 64, 128, 16), 4 classes,
Adam - on the same volume: an analytic phantom (nested balls for labels, a smooth texture on top) that
each rank computes for its own block from global coordinates, so no rank ever holds the whole volume.
A step is forward, Dice+CE loss (engines.partition.loss), backward, gradient all-reduce, Adam update.

Memory: each rank first runs one forward/backward on a small 32^3 block (so library code pages, oneDNN
kernels and thread pools are loaded), frees it and returns freed heap to the system (malloc_trim), then
resets the kernel's peak-RSS mark (/proc/self/clear_refs) and records its RSS as the baseline, then
builds the optimizer and the data block and trains; "peak" is the kernel's high-water mark (VmHWM)
minus that baseline: everything the training adds - optimizer state, gradients, data block,
activations, halo buffers, gloo buffers - but not the interpreter, libraries and model weights every
process pays once (the analogue of torch.cuda.max_memory_allocated, which leaves out the CUDA context).
The whole-process peak RSS is recorded too ("process_peak_mib"). RSS also holds what the C allocator keeps
after tensors are freed, so one more step then runs under torch.profiler(profile_memory=True): "tensor
peak" is the most tensor memory alive at once in that step (the tensors alive when it starts - weights,
gradients, optimizer state, data - plus the running sum of the allocations and frees it records), the
CPU analogue of torch.cuda.max_memory_allocated. Time: the median unprofiled step after the first;
the ranks share this machine's cores (threads per rank = cores / ranks, at least 1), so with more ranks
than cores the step time includes oversubscription.

glibc keeps freed blocks below its (self-raising, up to 32 MiB) mmap threshold in the heap, which adds
to RSS but not to tensor memory. The ranks run as train-seg's CPU ranks do, with
engines.partition.launch.CPU_RANK_ENV (MALLOC_MMAP_THRESHOLD_=1048576: freed activations go back to the
system) unless the environment sets those variables itself (recorded in the JSON as malloc_env).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "partition_memory.json"
MESHES = {1: (1, 1, 1), 2: (2, 1, 1), 4: (2, 2, 1)}
TARGETS = {2: 0.6, 4: 0.35}  # per-rank peak / 1-rank peak
WIDTH, CLASSES = 16, 4  # BasicUNet features (16, 16, 32, 64, 128, 16), as in the H200 numbers


def phantom_block(shape: tuple[int, int, int], slices: tuple[slice, slice, slice], device=None):
    """Block `slices` of the benchmark volume of spatial shape `shape`: image, labels (1, 1, d, h, w), made
    on `device` (default the CPU)."""
    import torch

    axes = [torch.arange(s.start, s.stop, dtype=torch.float32, device=device) / n - 0.5
            for s, n in zip(slices, shape, strict=True)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    radius = (z.square() + y.square() + x.square()).sqrt()
    labels = (radius < 0.4).long() + (radius < 0.3).long() + (radius < 0.15).long()
    image = labels.float() + 0.3 * torch.sin(40 * x) * torch.cos(30 * y) * torch.sin(20 * z)
    return image[None, None], labels[None, None]


def train_steps(net, optimizer, image, labels, mesh, steps: int, synchronize=lambda: None) -> list[float]:
    """`steps` training steps of a (partitioned) network on one block; the seconds each took."""
    from engines.partition.grads import sum_gradients
    from engines.partition.loss import dice_ce_loss

    times = []
    for _ in range(steps):
        synchronize()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = dice_ce_loss(net(image), labels, mesh)
        loss.backward()
        sum_gradients(net, mesh)
        optimizer.step()
        synchronize()
        times.append(time.perf_counter() - started)
    return times


def bench_worker(mesh_shape: tuple[int, int, int], size: int, steps: int, seed: int) -> dict:
    """On each rank: build, partition and train the network for `steps` steps; memory and times."""
    import torch
    import torch.distributed as dist

    from engines.memory import peak_rss_mb, release_free_heap, reset_peak_rss
    from engines.partition.convert import partition_model
    from engines.partition.mesh import SpatialMesh
    from engines.partition.models import build_model

    mesh = SpatialMesh(mesh_shape)
    torch.manual_seed(seed)
    net = partition_model(build_model("basicunet", out_channels=CLASSES, width=WIDTH), mesh, inplace=True)
    warm = tuple(32 * m for m in mesh_shape)
    image, labels = phantom_block(warm, mesh.block_slices(warm))
    train_steps(net, _NoStep(), image, labels, mesh, 1)
    net.zero_grad(set_to_none=True)
    del image, labels
    gc.collect()
    release_free_heap()
    dist.barrier()
    baseline = reset_peak_rss()  # VmHWM := current RSS (MiB)

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    shape = (size,) * 3
    image, labels = phantom_block(shape, mesh.block_slices(shape))
    times = train_steps(net, optimizer, image, labels, mesh, steps, synchronize=dist.barrier)
    peak = peak_rss_mb()
    alive = [*net.parameters(), *(p.grad for p in net.parameters() if p.grad is not None), image, labels,
             *(t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t))]
    cpu = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=cpu, profile_memory=True) as prof:
        train_steps(net, optimizer, image, labels, mesh, 1, synchronize=dist.barrier)
    changes = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()
                     if e.self_cpu_memory_usage)
    tensor_peak = sum(t.numel() * t.element_size() for t in alive) + max(
        itertools.accumulate(change for _, change in changes), default=0)
    return {"rank": mesh.rank, "baseline_mib": baseline, "peak_mib": peak - baseline,
            "process_peak_mib": peak, "tensor_peak_mib": tensor_peak / 2**20, "step_s": times,
            "threads": torch.get_num_threads()}


class _NoStep:
    """An optimizer that does nothing (the warm-up step leaves the weights alone)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        pass


def run_case(ranks: int, size: int, steps: int, seed: int) -> dict:
    """One rank count in a fresh RankPool; per-rank results and their summary."""
    from engines.partition.launch import RankPool, cpu_threads_per_rank
    from engines.partition.layout import format_mesh

    mesh = MESHES[ranks]
    with RankPool(ranks, threads=cpu_threads_per_rank(ranks), collective_timeout_s=1800) as pool:
        per_rank = pool.run(bench_worker, mesh, size, steps, seed, timeout_s=3600)
    rank_times = [r["step_s"][1:] or r["step_s"] for r in per_rank]
    step = statistics.median(max(ts) for ts in zip(*rank_times, strict=True))  # ends on the slowest rank
    return {"ranks": ranks, "mesh": format_mesh(mesh), "block": [size // m for m in mesh],
            "threads_per_rank": per_rank[0]["threads"],
            "peak_mib_per_rank": [round(r["peak_mib"], 1) for r in per_rank],
            "baseline_mib_per_rank": [round(r["baseline_mib"], 1) for r in per_rank],
            "process_peak_mib_per_rank": [round(r["process_peak_mib"], 1) for r in per_rank],
            "max_peak_mib": round(max(r["peak_mib"] for r in per_rank), 1),
            "tensor_peak_mib_per_rank": [round(r["tensor_peak_mib"], 1) for r in per_rank],
            "max_tensor_peak_mib": round(max(r["tensor_peak_mib"] for r in per_rank), 1),
            "step_s": round(step, 3), "step_s_all": [[round(t, 3) for t in r["step_s"]] for r in per_rank]}


def markdown(cases: list[dict], size: int) -> str:
    """The README table: one row per rank count, ratios against the 1-rank peak."""
    one, one_tensor = cases[0]["max_peak_mib"], cases[0]["max_tensor_peak_mib"]
    lines = ["| ranks | mesh | block | target | peak RSS added per rank (MiB) | vs 1 rank | tensor peak per "
             "rank (MiB) | vs 1 rank | process peak RSS (MiB) | step (s) | threads/rank |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        target = TARGETS.get(case["ranks"])
        process = max(case["process_peak_mib_per_rank"])
        lines.append(f"| {case['ranks']} | {case['mesh']} | {'x'.join(map(str, case['block']))} | "
                     f"{'-' if target is None else f'≤ {target}'} | {case['max_peak_mib']:.0f} | "
                     f"{_ratio(case['max_peak_mib'] / one, target)} | {case['max_tensor_peak_mib']:.0f} | "
                     f"{_ratio(case['max_tensor_peak_mib'] / one_tensor, target)} | {process:.0f} | "
                     f"{case['step_s']:.2f} | {case['threads_per_rank']} |")
    lines.append(f"\nBasicUNet (16, 16, 32, 64, 128, 16), 4 classes, Adam, {size}³ volume, float32, "
                 "gloo on CPU. Peak RSS added = a rank's peak RSS minus its RSS after imports, process-group "
                 "setup and a 32³ warm-up step; tensor peak = the most tensor memory alive at once "
                 "(torch.profiler); process peak RSS = the whole process's. Each the largest rank's.")
    return "\n".join(lines)


def _ratio(ratio: float, target: float | None) -> str:
    return f"{ratio:.3f}" if target is None else f"{ratio:.3f} ({'met' if ratio <= target else 'missed'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="volume edge in voxels (default 128)")
    parser.add_argument("--steps", type=int, default=3,
                        help="steps per case; the first is not timed (default 3)")
    parser.add_argument("--ranks", default="1,2,4", help="rank counts to run, from 1, 2, 4 (default 1,2,4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--show", type=Path, metavar="JSON", help="print the table of saved results and exit")
    args = parser.parse_args(argv)
    if args.show:
        saved = json.loads(args.show.read_text())
        print(markdown(saved["cases"], saved["size"]) + f"\n\ncommand: {saved['command']}")
        return 0
    counts = [int(r) for r in args.ranks.split(",")]
    if any(r not in MESHES for r in counts) or counts[0] != 1:
        parser.error(f"--ranks must start with 1 and use {sorted(MESHES)}")
    if args.size % (16 * 2):
        parser.error("--size must be a multiple of 32 (2 blocks x BasicUNet's 16)")
    cases = []
    for ranks in counts:
        cases.append(run_case(ranks, args.size, args.steps, args.seed))
        case = cases[-1]
        print(f"{ranks} rank(s): peak {case['max_peak_mib']:.0f} MiB per rank, step {case['step_s']:.2f} s",
              file=sys.stderr)
    from engines.partition.launch import CPU_RANK_ENV

    user_malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}  # glibc tunables
    malloc = {**CPU_RANK_ENV, **user_malloc}  # what the ranks ran with (engines.partition.launch)
    command = " ".join([*(["env"] if user_malloc else []), *(f"{k}={v}" for k, v in user_malloc.items()),
                        ".venv/bin/python benchmarks/partition_memory.py",
                        *(argv if argv is not None else sys.argv[1:])])
    one, one_tensor = cases[0]["max_peak_mib"], cases[0]["max_tensor_peak_mib"]
    result = {
        "benchmark": "partition_memory", "command": command.strip(), "size": args.size, "steps": args.steps,
        "seed": args.seed, "malloc_env": malloc,
        "model": {"name": "basicunet", "features": [16, 16, 32, 64, 128, 16], "classes": CLASSES},
        "memory": "VmHWM minus VmRSS after imports, process-group setup and a 32^3 warm-up step, per rank "
                  "(clear_refs reset, malloc_trim before the baseline); tensor peak from torch.profiler "
                  "profile_memory over one more step",
        "targets": {str(k): v for k, v in TARGETS.items()},
        "ratios": {str(c["ranks"]): round(c["max_peak_mib"] / one, 3) for c in cases},
        "tensor_ratios": {str(c["ranks"]): round(c["max_tensor_peak_mib"] / one_tensor, 3) for c in cases},
        "cases": cases,
    }
    print(markdown(cases, args.size))
    print(f"\ncommand: {result['command']}")
    write_results(args.out, result, cpus=len(os.sched_getaffinity(0)), python=platform.python_version())
    return 0


if __name__ == "__main__":
    sys.exit(main())
