"""Memory the train-seg launcher takes to check and prepare OUT/data/, as the volume grows.

    .venv/bin/python benchmarks/prepare_memory.py                 # 256^3 and 512^3, the README line
    .venv/bin/python benchmarks/prepare_memory.py --quick         # 48^3 and 96^3, a smoke test

For each size, SYNTHETIC volumes (random int16 "HU" in [-1000, 1000), labels 0..2 by threshold) are written
as uncompressed NIfTI three ways: int16 as stored, int16 with scl_slope 0.5 and scl_inter -1024 (CT often
ships scaled: values read as float64), labels stored as float32 (as many tools write them), and labels
whose values are not 0..C-1 (uint16 0, 41, 1000, as FreeSurfer ids: each mapped to its class index); and
the int16 image and uint8 labels compressed, decompressed as they are read: gzip NIfTI (.nii.gz), gzip NRRD
and zlib MetaImage (.mha), the last two written by SimpleITK.
`prepare_data` (what train-seg runs before any rank starts) prepares each in a fresh process; a thread
samples the process's anonymous resident memory (RssAnon: the heap, not the page cache of the memory-mapped
input) every millisecond, so the peak is a lower bound. Memory read a slab at a time stays flat as the
volume grows; a whole-volume read of the scaled image alone would add 8 bytes a voxel (1 GiB at 512^3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import command_line, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "prepare_memory.json"
BLOCK = (16, 16, 16)
CASES = {  # name: (image file, labels file)
    "int16": ("image.nii", "labels.nii"),
    "int16 scaled": ("scaled.nii", "labels.nii"),
    "float32 labels": ("image.nii", "float_labels.nii"),
    "sparse uint16 labels": ("image.nii", "sparse_labels.nii"),
    "int16 gzip": ("image.nii.gz", "labels.nii.gz"),
    "int16 NRRD gzip": ("image.nrrd", "labels.nrrd"),
    "int16 MetaImage zlib": ("image.mha", "labels.mha"),
}

# Runs in a fresh process: argv = image, labels, out, block. Prints {"anon_mib", "seconds"}.
MEASURE = """
import json, sys, threading, time
from engines.memory import anon_rss_mb as anon
from engines.partition.data import prepare_data
import engines.io, engines.io.itk_formats  # imports before the baseline: what is measured is the preparing
base, peak, running = anon(), [0.0], [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], anon())
        time.sleep(0.001)
thread = threading.Thread(target=sample, daemon=True)
thread.start()
started = time.perf_counter()
prepare_data(sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[4].split(",")], sys.argv[3])
seconds = time.perf_counter() - started
running[0] = False
thread.join()
print(json.dumps({"anon_mib": max(peak[0], anon()) - base, "seconds": seconds}))
"""


def write_volumes(folder: Path, size: int) -> None:
    """The SYNTHETIC image (plain and scaled) and labels (uint8, float32, sparse uint16), and the image and
    uint8 labels compressed (NIfTI, NRRD, MetaImage), of one size, 1 mm voxels."""
    import nibabel as nib
    import SimpleITK as sitk

    image = np.random.default_rng(size).integers(-1000, 1000, (size,) * 3, dtype=np.int16)
    labels = ((image > 0).astype(np.uint8) + (image > 500)).astype(np.uint8)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(folder / "image.nii"))
    scaled = nib.Nifti1Image(image, np.eye(4))
    scaled.header.set_slope_inter(0.5, -1024.0)
    nib.save(scaled, str(folder / "scaled.nii"))
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(folder / "labels.nii"))
    nib.save(nib.Nifti1Image(labels.astype(np.float32), np.eye(4)), str(folder / "float_labels.nii"))
    sparse = np.array([0, 41, 1000], np.uint16)[labels]
    nib.save(nib.Nifti1Image(sparse, np.eye(4)), str(folder / "sparse_labels.nii"))
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(folder / "image.nii.gz"))
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(folder / "labels.nii.gz"))
    for suffix in (".nrrd", ".mha"):
        for name, array in (("image", image), ("labels", labels)):  # ITK's arrays are (z, y, x)
            sitk.WriteImage(sitk.GetImageFromArray(array.transpose()), str(folder / (name + suffix)),
                            useCompression=True)


def measure(image: Path, labels: Path, out: Path) -> dict:
    """Peak added anonymous memory (MiB) and seconds of one preparation, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    block = ",".join(str(n) for n in BLOCK)
    result = subprocess.run([sys.executable, "-c", MEASURE, str(image), str(labels), str(out), block],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode:
        raise RuntimeError(f"prepare_data failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512", help="volume edges (default 256,512)")
    parser.add_argument("--quick", action="store_true", help="48^3 and 96^3, no JSON (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in ("48,96" if args.quick else args.sizes).split(","))
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
            folder = Path(tmp)
            write_volumes(folder, size)
            for case, (image, labels) in CASES.items():
                found = measure(folder / image, folder / labels, folder / f"out-{len(rows)}")
                rows.append({"size": size, "case": case, "anon_mib": round(found["anon_mib"], 1),
                             "seconds": round(found["seconds"], 2)})
                print(f"{size}^3 {case}: {rows[-1]}", file=sys.stderr)
    lines = ["| volume | input | peak heap added (MiB) | the whole volume as float64 (MiB) | seconds |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['size']}³ | {row['case']} | {row['anon_mib']:.0f} | "
                     f"{row['size'] ** 3 * 8 / 2**20:.0f} | {row['seconds']:.2f} |")
    table = "\n".join(lines)
    command = command_line("prepare_memory.py", argv)
    print(f"prepare_data (train-seg's preparation of OUT/data/), SYNTHETIC volumes\n\n"
          f"{table}\n\ncommand: {command}")
    if args.quick:
        return 0
    write_results(args.out, {"benchmark": "prepare_memory", "command": command, "rows": rows,
                             "table_markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
