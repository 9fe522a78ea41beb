"""Super-resolution on held-out MNI152 slices (issue 5): PSNR/SSIM vs bicubic and nearest, speed, a figure.

    .venv/bin/python benchmarks/sr_benchmark.py            # the full run quoted in the README
    .venv/bin/python benchmarks/sr_benchmark.py --quick    # 3 held-out slices, a smoke test
    .venv/bin/python benchmarks/sr_benchmark.py --part quality   # PSNR/SSIM only (any machine load) ...
    .venv/bin/python benchmarks/sr_benchmark.py --part timing    # ... then the timing, on a quiet machine

Runs `engines.superres.bench.run_benchmark` (what `python main.py sr-bench --model NAME --json` prints) for
the scrolling model (sr_light) and the refine model (sr_full), each with its GAN-fine-tuned variant; prints
the Markdown tables for the README and the command; writes benchmarks/results/sr_benchmark.json and the
figure docs/sr_crops.png (x4 crops of a held-out slice: LR, bicubic, ours (L1), GAN, ground truth).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

RESULTS = ROOT / "benchmarks" / "results" / "sr_benchmark.json"
FIGURE = ROOT / "docs" / "sr_crops.png"
MODELS = (("sr_light", "scrolling"), ("sr_full", "refine"))
FIGURE_SCALE = 4.0
FIGURE_CROP = 72  # ground-truth pixels per side


def _cell(row: dict, prefix: str, region: str) -> str:
    return f"{row[f'psnr{prefix}{region}']:.2f} / {row[f'ssim{prefix}{region}']:.4f}"


def tables(results: dict[str, dict]) -> str:
    """The README's Markdown: PSNR / SSIM per scale (whole slice, brain), then speed and targets."""
    first = next(iter(results.values()))
    names = list(results)
    lines = [f"Held-out data: {first['data']}; {first['degradation']} degradation; PSNR (dB) / SSIM, "
             f"scikit-image, data_range {first['data_range']}."]
    for region, suffix in (("whole slice", ""), ("brain mask", "_brain")):
        head = ["scale", "nearest", "bicubic"]
        for name in names:
            head += [name, f"{name} GAN"]
        lines += ["", f"**{region}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, base in enumerate(first["scales"]):
            cells = [f"×{base['scale']:g}", _cell(base, "_nearest", suffix), _cell(base, "_bicubic", suffix)]
            for name in names:
                row = results[name]["scales"][i]
                cells += [_cell(row, "", suffix), _cell(row, "_gan", suffix)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| model | use | parameters | ms per 256×256 slice at ×2 (2 threads, wall clock) | "
              "CPU ms (1 thread) | load average during the run | PSNR gain ×2 / ×4 (dB) | "
              "SSIM > bicubic at every scale |", "|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        reached = result["targets"]["reached"]
        if "ms_per_slice_x2" in result:
            speed = (f"{result['ms_per_slice_x2']:.0f} | {result['cpu_ms_per_slice_x2_1thread']:.0f} | "
                     f"{result['load_average_1min']} ({result['cpus']} CPUs)")
        else:
            speed = "not measured | not measured | –"
        lines.append(f"| {name} | {dict(MODELS).get(name, '')} | {result['params']:,} | {speed} | "
                     f"+{reached['psnr_gain_x2_db']:.2f} / +{reached['psnr_gain_x4_db']:.2f} | "
                     f"{'yes' if reached['ssim_above_bicubic_every_scale'] else 'no'} |")
    return "\n".join(lines)


def figure(path: Path, *, model: str = "sr_full", gan: str = "sr_full_gan") -> None:
    """x4 crops of the middle held-out slice: LR (shown with nearest), bicubic, model, GAN, ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from engines.superres.bench import centre_crop_for_scale, holdout_slab, holdout_slices
    from engines.superres.resample import degrade, upsample_bicubic, upsample_nearest
    from engines.superres.weights import load_model

    ks, slices, _ = holdout_slices(holdout_slab(model), quick=True)
    k, gt = ks[1], slices[1]
    cy, cx = centre_crop_for_scale(gt.shape, FIGURE_SCALE)
    gt = torch.from_numpy(np.ascontiguousarray(gt[cy, cx]))[None, None]
    s = FIGURE_SCALE
    lr = degrade(gt, (round(gt.shape[2] / s), round(gt.shape[3] / s)))
    with torch.inference_mode():
        panels = {"LR (×4, nearest)": upsample_nearest(lr, s, s), "bicubic": upsample_bicubic(lr, s, s),
                  f"ours ({model})": load_model(model)(lr, s, s), f"GAN ({gan})": load_model(gan)(lr, s, s),
                  "ground truth": gt}
    h, w = gt.shape[2:]
    y0, x0 = h // 2 - FIGURE_CROP // 2 - 16, w // 2 - FIGURE_CROP // 2  # around the ventricles
    crops = {title: img[0, 0, y0:y0 + FIGURE_CROP, x0:x0 + FIGURE_CROP].numpy()
             for title, img in panels.items()}
    low, high = np.percentile(crops["ground truth"], (1, 99.5))  # one grey scale for every panel
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (title, crop) in zip(axes, crops.items(), strict=True):
        ax.imshow(np.rot90(crop), cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"MNI152 T1, held-out axial slice k={k}, ×{s:g} (antialiased bicubic degradation)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 held-out slices (a smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--figure", type=Path, default=FIGURE, help=f"figure (default {FIGURE})")
    parser.add_argument("--part", choices=("all", "quality", "timing"), default="all",
                        help="quality: PSNR/SSIM and the figure, no timing; timing: add the timing to the "
                             "results file a quality run wrote (measure speed when the machine is quiet)")
    args = parser.parse_args(argv)

    import torch

    from engines.superres.bench import reached_targets, run_benchmark, timing_fields
    from engines.superres.weights import load_model

    command = "python benchmarks/sr_benchmark.py" + (" --quick" if args.quick else "")
    if args.part == "timing":
        saved = json.loads(args.out.read_text())
        command, results = saved["command"], saved["results"]
        for name, result in results.items():
            model = load_model(name).to(memory_format=torch.channels_last)
            result.update(timing_fields(model, seed=args.seed, threads=args.threads))
            result["targets"]["reached"] = reached_targets(result)
        command += " (timing added by --part timing)"
    else:
        results = {}
        for name, _ in MODELS:
            t0 = time.perf_counter()
            results[name] = run_benchmark(model=name, quick=args.quick, seed=args.seed, threads=args.threads,
                                          timing=args.part == "all")
            print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if args.part == "quality":
            command += " --part quality"
    table = tables(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "results": results, "table": table}, indent=1) + "\n")
    print(table)
    if args.part != "timing":
        figure(args.figure)
    print(f"\n(command: {command}; results: {args.out}; figure: {args.figure})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
