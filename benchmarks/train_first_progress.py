"""Seconds from starting the demo training job to its first progress event (issue 3: within 30 s).

    .venv/bin/python benchmarks/train_first_progress.py             # the run quoted in the README
    .venv/bin/python benchmarks/train_first_progress.py --quick     # crop 32^3, 1 run

The job is what the "Train 3D (partitioned)" dock starts on the demo data: `main.py train-seg` on nilearn's
MNI152 T1 with its GM/WM/CSF tissue labels (4 classes), BasicUNet width 8, 2 ranks on mesh 2x1x1, gloo on
the CPU, crop 64^3. The clock starts when the process is started and stops at its first "progress" event
(torch/MONAI imports, torchrun's rendezvous, reading and normalising the volume, the first step); each
run is a fresh process in a fresh output folder. The job is then stopped with SIGTERM (it checkpoints).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import command_line, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "train_first_progress.json"
TARGET_S = 30.0


def first_progress_seconds(image: Path, labels: Path, out: Path, crop: int, seed: int) -> float:
    """Start the demo job, return the seconds to its first progress event, then stop it."""
    argv = [sys.executable, str(ROOT / "main.py"), "train-seg", "--image", str(image),
            "--labels", str(labels), "--ranks", "2", "--mesh", "2x1x1", "--model", "basicunet",
            "--width", "8", "--steps", "200", "--lr", "1e-3", "--crop", f"{crop},{crop},{crop}",
            "--out", str(out), "--seed", str(seed), "--no-predict"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "progress":
                return time.perf_counter() - start
            if event.get("event") == "error":
                raise RuntimeError(f"the job failed: {event.get('message')}")
        raise RuntimeError(f"the job ended (exit code {proc.wait()}) before any progress")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh jobs to time (default 3)")
    parser.add_argument("--quick", action="store_true", help="crop 32^3 and one run (a smoke test)")
    parser.add_argument("--seed", type=int, default=0, help="the job's seed (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    crop, runs = (32, 1) if args.quick else (64, args.runs)

    from engines.datasets.mni152 import load_mni152_t1, load_mni152_tissue_labels
    from engines.io import write_volume

    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        image, labels = Path(tmp) / "t1.nii", Path(tmp) / "tissue.nii"
        write_volume(load_mni152_t1(), image)
        write_volume(load_mni152_tissue_labels(), labels)
        seconds = [first_progress_seconds(image, labels, Path(tmp) / f"run{i}", crop, args.seed)
                   for i in range(runs)]

    median = statistics.median(seconds)
    table = ("| runs | crop | first progress s (median) | min | max | target |\n|---|---|---|---|---|---|\n"
             f"| {runs} | {crop}³ | {median:.1f} | {min(seconds):.1f} | {max(seconds):.1f} "
             f"| ≤ {TARGET_S:.0f} |")
    command = command_line("train_first_progress.py", argv)
    print("Demo training job (MNI152 T1 + tissue labels, BasicUNet width 8, 2 ranks, gloo): time to first "
          "progress event\n")
    print(table)
    print(f"\ncommand: {command}")
    if not args.quick:
        write_results(args.out, {
            "benchmark": "train_first_progress", "command": command, "crop": crop, "seconds": seconds,
            "median_s": median, "target_s": TARGET_S, "table_markdown": table,
        }, load_average_at_end=os.getloadavg()[0])
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
