"""Per-rank peak memory of `train-seg` as the volume grows and the crop stays: a rank holds its blocks only.

    .venv/bin/python benchmarks/train_seg_rank_memory.py                 # 128^3 and 384^3, the README line
    .venv/bin/python benchmarks/train_seg_rank_memory.py --quick         # 64^3 and 96^3, a smoke test

For each size, a SYNTHETIC volume (nested balls with noise, 3 classes, float32 image, uint8 labels) is
written as uncompressed NIfTI and `main.py train-seg` trains BasicUNet (width 8) on it with 2 ranks
(mesh 2x1x1, gloo), crop 64^3, 4 steps, no prediction. Each rank's peak RSS comes from the job's own
metric events (VmHWM). Ranks that read only their blocks of each crop from OUT/data/ peak the same
whatever the volume's size; ranks that each held the whole normalised volume (as train-seg did before)
would add about 5 bytes a voxel (float32 image + uint8 labels): 260 MiB more at 384^3 than at 128^3.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import command_line, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "train_seg_rank_memory.json"
CROP, STEPS = 64, 4
HELD_BYTES_PER_VOXEL = 5  # float32 image + uint8 labels, what each rank held before


def write_phantom(folder: Path, size: int) -> tuple[Path, Path]:
    """A size^3 image and its 3-class labels as .nii (uncompressed), 1 mm voxels."""
    import nibabel as nib

    axis = np.arange(size, dtype=np.float32) - size / 2
    radius = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    labels = ((radius < size / 3).astype(np.uint8) + (radius < size / 6)).astype(np.uint8)
    image = labels.astype(np.float32) * 100 + np.random.default_rng(size).normal(0, 20, labels.shape).astype(
        np.float32)
    paths = folder / f"image{size}.nii", folder / f"labels{size}.nii"
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(paths[0]))
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(paths[1]))
    return paths


def run_job(image: Path, labels: Path, out: Path) -> list[float]:
    """Train; the largest peak RSS (MiB) each rank reported."""
    argv = [sys.executable, str(ROOT / "main.py"), "train-seg", "--image", str(image),
            "--labels", str(labels), "--ranks", "2", "--mesh", "2x1x1", "--model", "basicunet",
            "--width", "8", "--steps", str(STEPS), "--crop", f"{CROP},{CROP},{CROP}", "--out", str(out),
            "--no-predict"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    peaks = [e["peak_mem_mb"] for e in events if e["event"] == "metric"]
    if result.returncode or not peaks:
        raise RuntimeError(f"train-seg failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return [max(rank) for rank in zip(*peaks, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,384", help="volume edges (default 128,384)")
    parser.add_argument("--quick", action="store_true", help="64^3 and 96^3, no JSON (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in ("64,96" if args.quick else args.sizes).split(","))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        for size in sizes:
            image, labels = write_phantom(Path(tmp), size)
            peaks = run_job(image, labels, Path(tmp) / f"run{size}")
            rows.append({"size": size, "voxels": size**3, "peak_mib_per_rank": [round(p, 1) for p in peaks]})
            print(f"{size}^3: peak RSS per rank {peaks} MiB", file=sys.stderr)
    base = rows[0]
    lines = ["| volume | peak RSS per rank (MiB) | more than the smallest | a whole copy per rank would add |"
             "\n|---|---|---|---|"]
    for row in rows:
        extra = max(row["peak_mib_per_rank"]) - max(base["peak_mib_per_rank"])
        held = (row["voxels"] - base["voxels"]) * HELD_BYTES_PER_VOXEL / 2**20
        row["extra_mib"], row["whole_copy_extra_mib"] = round(extra, 1), round(held, 1)
        lines.append(f"| {row['size']}³ | {' / '.join(f'{p:.0f}' for p in row['peak_mib_per_rank'])} | "
                     f"{extra:+.0f} | {held:+.0f} |")
    table = "\n".join(lines)
    command = command_line("train_seg_rank_memory.py", argv)
    print(f"train-seg, BasicUNet width 8, 2 ranks (2x1x1, gloo), crop {CROP}³, {STEPS} steps, SYNTHETIC "
          f"phantom\n\n{table}\n\ncommand: {command}")
    if args.quick:
        return 0
    write_results(args.out, {"benchmark": "train_seg_rank_memory", "command": command, "crop": CROP,
                             "steps": STEPS, "rows": rows, "table_markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
