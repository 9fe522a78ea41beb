"""WHU-Hi protocol on the SYNTHETIC farmland demo scene: methods x training pixels per class, 3 seeds.

Prints a Markdown table (OA mean ± SD over seeds, with AA and kappa) and the command that reproduces it,
then times full-scene prediction of each method through the real CLI (`main.py hsi-bench ... --save-map`),
with the process's peak memory. Writes benchmarks/results/hsi_benchmark.json (after every run, so an
interrupted run keeps what it measured; "complete" says whether it finished).

    nice -n 10 .venv/bin/python benchmarks/hsi_benchmark.py --no-speed        # the accuracy table
    nice -n 10 .venv/bin/python benchmarks/hsi_benchmark.py --speed-only \
        --out benchmarks/results/hsi_speed.json
    .venv/bin/python benchmarks/hsi_benchmark.py --quick                      # a reduced run
    .venv/bin/python benchmarks/hsi_benchmark.py --summarise   # table again from the stored runs

SD is the sample standard deviation (ddof=1) over the seeds; with one seed there is none.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.datasets.farmland import DEFAULT_SIZE, demo_scene_files  # noqa: E402
from engines.hyperspectral.bench import METHODS, run_protocol  # noqa: E402
from engines.hyperspectral.cli import QUICK_DEMO_SIZE  # noqa: E402
from engines.hyperspectral.protocol import PER_CLASS_CHOICES, make_split  # noqa: E402
from engines.io.cubes import read_cube  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "hsi_benchmark.json"
RUN_KEYS = (
    "method",
    "per_class_train",
    "seed",
    "OA",
    "AA",
    "kappa",
    "per_class_accuracy",
    "confusion_matrix",
    "fit_seconds",
    "predict_seconds",
    "settings",
)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--per-class", default=",".join(map(str, PER_CLASS_CHOICES)))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seed", type=int, default=None, help="run a single seed (same as --seeds N)")
    parser.add_argument("--quick", action="store_true", help="small scene, reduced training: for tests")
    parser.add_argument("--no-speed", action="store_true", help="skip the full-scene timing")
    parser.add_argument("--speed-only", action="store_true", help="only the full-scene timing")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--summarise",
        action="store_true",
        help="run nothing: recompute the summary and table of --out from its stored runs, rewrite it, print",
    )
    args = parser.parse_args(argv)
    if args.summarise:
        return summarise(Path(args.out))
    methods = [m for m in args.methods.split(",") if m]
    sizes = [] if args.speed_only else _ints(args.per_class)
    seeds = [args.seed] if args.seed is not None else _ints(args.seeds)
    scene_size = QUICK_DEMO_SIZE if args.quick else DEFAULT_SIZE
    command = (
        "nice -n 10 .venv/bin/python benchmarks/hsi_benchmark.py"
        + (" --quick" if args.quick else "")
        + (" --speed-only" if args.speed_only else " --no-speed" if args.no_speed else "")
        + ("" if args.methods == ",".join(METHODS) else f" --methods {args.methods}")
        + ("" if args.speed_only or sizes == list(PER_CLASS_CHOICES) else f" --per-class {args.per_class}")
        + ("" if args.speed_only or seeds == [0, 1, 2] else f" --seeds {','.join(map(str, seeds))}")
        + ("" if args.out == str(RESULTS) else f" --out {args.out}")
    )

    files = demo_scene_files(scene_size, seed=0)
    cube = read_cube(files["mat"])
    cube.data = np.asarray(cube.data)
    doc = {
        "scene": {
            "name": "SYNTHETIC_Farmland",
            "size": list(scene_size),
            "bands": cube.shape[2],
            "file": str(files["mat"]),
            "classes": cube.class_names,
        },
        "command": command,
        "complete": False,
        "runs": [],
        "summary": {},
        "full_scene_prediction": [],
    }
    out = Path(args.out)
    # Sizes outermost, so an interrupted run still holds every method at the sizes it reached.
    for n in sizes:
        for seed in seeds:
            for method in methods:
                split = make_split(cube.labels, per_class=n, seed=seed)
                result, _ = run_protocol(cube, method, split, seed=seed, quick=args.quick)
                doc["runs"].append({k: result[k] for k in RUN_KEYS})
                print(
                    f"{method:5} {n:4}/class seed {seed}: OA {100 * result['OA']:.2f}  "
                    f"AA {100 * result['AA']:.2f}  kappa {result['kappa']:.4f}  "
                    f"({result['fit_seconds']:.0f} s + {result['predict_seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                doc["summary"] = _summary(doc["runs"], methods, sizes)
                _write(out, doc)

    if not args.no_speed:
        doc["full_scene_prediction"] = [_time_full_scene(m, args.quick) for m in methods]
    doc["complete"] = True
    doc["markdown"] = _markdown(
        doc["summary"], methods, sizes, seeds, scene_size, doc["full_scene_prediction"]
    )
    _write(out, doc)
    print(doc["markdown"])
    print(f"\nReproduce: {command}")
    print(f"wrote {out}")
    return 0


def _write(out: Path, doc: dict) -> None:
    """Write the results so far (with the machine and its load now)."""
    doc["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))


def summarise(path: Path) -> int:
    """Recompute `summary` and `markdown` of a results file from its `runs`; rewrite it and print."""
    doc = json.loads(path.read_text())
    runs = doc["runs"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    sizes = sorted({r["per_class_train"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    doc["summary"] = _summary(runs, methods, sizes)
    doc["markdown"] = _markdown(
        doc["summary"], methods, sizes, seeds, tuple(doc["scene"]["size"]), doc["full_scene_prediction"]
    )
    path.write_text(json.dumps(doc, indent=1))  # the machine it was measured on stays as recorded
    print(doc["markdown"])
    print(f"\nsummarised {len(runs)} stored runs of: {doc['command']}")
    print(f"wrote {path}")
    return 0


def _summary(runs: list[dict], methods: list[str], sizes: list[int]) -> dict:
    """{"method/n": {key: [mean, sample SD (None for one seed)]}} for OA, AA, kappa and fit seconds."""
    out: dict = {}
    for m in methods:
        for n in sizes:
            sel = [r for r in runs if r["method"] == m and r["per_class_train"] == n]
            if sel:
                out[f"{m}/{n}"] = {
                    k: [
                        float(np.mean([r[k] for r in sel])),
                        float(np.std([r[k] for r in sel], ddof=1)) if len(sel) > 1 else None,
                    ]
                    for k in ("OA", "AA", "kappa", "fit_seconds")
                }
    return out


def _time_full_scene(method: str, quick: bool) -> dict:
    """Full-scene classification through the CLI in a fresh process: seconds and its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(ROOT / "main.py"),
            "hsi-bench",
            "demo",
            "--method",
            method,
            "--per-class",
            "25",
            "--seed",
            "0",
            "--save-map",
            str(Path(tmp) / "map.tif"),
            "--events",
        ] + (["--quick"] if quick else [])
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        wall = time.perf_counter() - t
    r = json.loads(proc.stdout.splitlines()[-1])["result"]  # the "done" event
    return {
        "method": method,
        "predict_seconds": r["predict_seconds"],
        "fit_seconds": r["fit_seconds"],
        "peak_memory_mb": r["peak_memory_mb"],
        "wall_seconds": round(wall, 1),
    }


def _markdown(
    summary: dict,
    methods: list[str],
    sizes: list[int],
    seeds: list[int],
    size: tuple[int, int],
    speed: list[dict],
) -> str:
    lines = [
        f"SYNTHETIC farmland demo scene ({size[0]}x{size[1]}x270): overall accuracy % (mean ± sample "
        f"SD over seeds {', '.join(map(str, seeds))}); AA % / kappa below",
        "",
        "| method | " + " | ".join(f"{n}/class" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    if not sizes:
        lines = []
    for m in methods if sizes else ():
        cells = []
        for n in sizes:
            s = summary.get(f"{m}/{n}")
            cells.append(
                ""
                if s is None
                else f"{100 * s['OA'][0]:.2f}"
                + ("" if s["OA"][1] is None else f" ± {100 * s['OA'][1]:.2f}")
                + f"<br>AA {100 * s['AA'][0]:.2f} / κ {s['kappa'][0]:.3f}"
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if speed:
        lines += [""] if lines else []
        lines += [
            f"Full-scene prediction of the {size[0]}x{size[1]}x270 scene (every pixel, in a fresh process: "
            "`main.py hsi-bench demo --per-class 25 --save-map`; wall = the whole command, reading and "
            "training included):",
            "",
            "| method | predict s | fit s | wall s | peak memory MB |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['method']} | {s['predict_seconds']:.1f} | {s['fit_seconds']:.1f} | "
            f"{s['wall_seconds']:.1f} | {s['peak_memory_mb']:.0f} |"
            for s in speed
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
