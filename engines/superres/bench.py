"""Held-out evaluation of super-resolution models (sr-bench): PSNR/SSIM vs bicubic and nearest, timing.

Ground truth: axial slices of the MNI152 T1 in the slab every shipped model's card lists as held out
(never seen in training, in any plane). Each slice is normalised like training data (volume percentiles
0.5 -> 0, 99.5 -> 1), centre-cropped so that its size divided by the scale is whole, degraded (antialiased
bicubic by default) and upsampled back. PSNR and SSIM come from scikit-image with data_range = 1, on the
whole slice and on the brain (nilearn's MNI152 brain mask; SSIM = mean of the SSIM map inside it).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any

import numpy as np
import torch

from engines.errors import InputError
from engines.superres.geometry import exact_fraction
from engines.superres.model import MetaSR, count_parameters
from engines.superres.resample import degrade, upsample_bicubic, upsample_nearest
from engines.superres.weights import load_model, model_paths, read_card

SCALES = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
# Axial slices of the 1 mm MNI152 template (the held-out test set).
HOLDOUT_SHAPE = (197, 233)
# A scale is scored only when its aligned centred crop keeps at least this fraction of each side (every
# 0.05 step from 1.05 to 4 does; x3.95 = 79/20 keeps 158 of 233 columns).
MIN_CROP_FRACTION = 2 / 3
DATA_RANGE = 1.0
TIMING_SIZE = 256
TARGETS = {"psnr_gain_x2_db": 1.0, "psnr_gain_x4_db": 0.5, "max_params": 1_500_000,
           "max_ms_per_slice_x2": 500}


def holdout_slab(model: str) -> tuple[int, int]:
    """The held-out axial slab (k0, k1) recorded in the model's card; InputError for a model that held
    none out (adapted on a scan, or trained on another volume): it has no unseen MNI152 slices to score."""
    slab = read_card(model)["training"].get("holdout")
    if not slab:
        raise InputError("this model held out no MNI152 slab (adapted on a scan, or trained on another "
                         "volume), so sr-bench has no unseen slices to score it on", model)
    k0, k1 = slab
    return int(k0), int(k1)


def holdout_slices(slab: tuple[int, int], quick: bool) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(slice indices, normalised slices (N, 197, 233), brain masks (N, 197, 233) bool)."""
    from nilearn import datasets

    from engines.datasets.mni152 import load_mni152_t1
    from engines.superres.data import intensity_range, normalise

    vol = np.asarray(load_mni152_t1().data, dtype=np.float32)
    vol = normalise(vol, intensity_range(vol))
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0.5
    k0, k1 = slab
    ks = list(range(k0, k1))
    if quick:
        ks = [ks[0], ks[len(ks) // 2], ks[-1]]
    return ks, np.stack([vol[:, :, k] for k in ks]), np.stack([mask[:, :, k] for k in ks])


def check_bench_scale(scale: float, shape: tuple[int, int] = HOLDOUT_SHAPE) -> None:
    """InputError unless slices of `shape` can be scored at `scale`.

    Each slice is scored on exactly aligned pairs: a centred crop whose sides are multiples of the scale's
    numerator p (s = p/q), so that side / s is whole. A scale whose p leaves less than
    `MIN_CROP_FRACTION` of a side (x2.37 = 237/100 or x3.999 on 197 x 233 slices: none at all; x1.01 =
    101/100: 101 of 197 rows) is refused rather than scored on a different region or a misaligned grid.
    """
    frac = exact_fraction(scale)
    kept = [n // frac.numerator * frac.numerator for n in shape]
    if all(m >= MIN_CROP_FRACTION * n for m, n in zip(kept, shape, strict=True)):
        return
    near = min(max(round(float(scale), 1), 1.1), 4.0)
    raise InputError(
        f"sr-bench cannot score x{scale:g} on its {shape[0]}x{shape[1]} held-out slices: it scores exactly "
        f"aligned pairs, on a centred crop whose sides are multiples of p in s = p/q = {frac.numerator}/"
        f"{frac.denominator}, and that keeps only {kept[0]}x{kept[1]} pixels (less than "
        f"{MIN_CROP_FRACTION:.0%} of a side); use a scale with a smaller numerator, such as x{near:g}")


def centre_crop_for_scale(shape: tuple[int, int], scale: float) -> tuple[slice, slice]:
    """Centred crop whose sides are multiples of the scale's numerator p (s = p/q), so side/s is whole.

    InputError (`check_bench_scale`) when it would keep less than `MIN_CROP_FRACTION` of a side.
    """
    check_bench_scale(scale, shape)
    p = exact_fraction(scale).numerator
    out = []
    for n in shape:
        m = n // p * p
        start = (n - m) // 2
        out.append(slice(start, start + m))
    return out[0], out[1]


def _psnr(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    if mask is None:
        return float(peak_signal_noise_ratio(gt, pred, data_range=DATA_RANGE))
    mse = float(np.mean((gt[mask] - pred[mask]) ** 2))
    return 10 * math.log10(DATA_RANGE**2 / max(mse, 1e-12))


def _ssim(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    whole, ssim_map = structural_similarity(gt, pred, data_range=DATA_RANGE, full=True)
    return float(whole), float(ssim_map[mask].mean())


def evaluate(
    models: dict[str, MetaSR], slices: np.ndarray, masks: np.ndarray, *, scales=SCALES,
    degradation: str = "bicubic",
) -> list[dict[str, Any]]:
    """Mean metrics per scale for "nearest", "bicubic" and each named model.

    Keys per scale: psnr_<method>, ssim_<method> (whole slice), psnr_<method>_brain, ssim_<method>_brain.
    """
    rows = []
    for s in scales:
        acc: dict[str, list[float]] = {}
        cy, cx = centre_crop_for_scale(slices.shape[1:], s)
        for gt_np, mask in zip(slices, masks, strict=True):
            gt_np, mask = gt_np[cy, cx], mask[cy, cx]
            gt = torch.from_numpy(np.ascontiguousarray(gt_np))[None, None]
            h, w = round(gt.shape[2] / s), round(gt.shape[3] / s)
            lr = degrade(gt, (h, w), degradation)
            preds = {"nearest": upsample_nearest(lr, s, s), "bicubic": upsample_bicubic(lr, s, s)}
            with torch.inference_mode():
                preds.update({name: m(lr, s, s) for name, m in models.items()})
            for name, pred in preds.items():
                pred_np = pred[0, 0].numpy().astype(np.float64)
                ref = gt_np.astype(np.float64)
                ssim_whole, ssim_brain = _ssim(ref, pred_np, mask)
                for key, value in ((f"psnr_{name}", _psnr(ref, pred_np)), (f"ssim_{name}", ssim_whole),
                                   (f"psnr_{name}_brain", _psnr(ref, pred_np, mask)),
                                   (f"ssim_{name}_brain", ssim_brain)):
                    acc.setdefault(key, []).append(value)
        rows.append({"scale": s, **{k: round(float(np.mean(v)), 4) for k, v in acc.items()}})
    return rows


def time_model(model: MetaSR, *, scale: float = 2.0, size: int = TIMING_SIZE, repeats: int = 5,
               seed: int = 0) -> tuple[float, float]:
    """Median (wall-clock ms, CPU ms of this process) to super-resolve one size x size slice, end to end
    (`super_resolve`) with torch's current thread count.

    On a machine shared with other work the wall clock grows with the load; the CPU time does not (with
    one thread it is the wall clock of an idle core).
    """
    from engines.superres.infer import super_resolve

    rng = np.random.default_rng(seed)
    img = rng.random((size, size)).astype(np.float32)
    super_resolve(img, scale, scale, model)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        super_resolve(img, scale, scale, model)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return round(statistics.median(wall), 1), round(statistics.median(cpu), 1)


def timing_fields(model: MetaSR, *, seed: int = 0, threads: int = 2) -> dict[str, Any]:
    """The timing part of the sr-bench JSON: wall clock with `threads` threads, CPU time with one."""
    load = os.getloadavg()[0]
    torch.set_num_threads(threads)
    ms, _ = time_model(model, seed=seed)
    torch.set_num_threads(1)
    _, cpu_ms_1thread = time_model(model, seed=seed)
    torch.set_num_threads(threads)
    return {"ms_per_slice_x2": ms, "cpu_ms_per_slice_x2_1thread": cpu_ms_1thread,
            "load_average_1min": round(load, 2), "cpus": os.cpu_count(),
            "timing": f"median of 5, {TIMING_SIZE}x{TIMING_SIZE} input at x2, CPU, {threads} threads, "
                      "super_resolve end to end (wall clock); cpu_ms_per_slice_x2_1thread: the process's CPU "
                      "time with 1 thread"}


def reached_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Which of the issue's targets a run_benchmark result reaches (None where it was not measured)."""
    by_scale = {r["scale"]: r for r in result["scales"]}

    def gain(s: float) -> float | None:
        return round(by_scale[s]["psnr"] - by_scale[s]["psnr_bicubic"], 3) if s in by_scale else None

    ms, cpu_ms = result.get("ms_per_slice_x2"), result.get("cpu_ms_per_slice_x2_1thread")
    limit = TARGETS["max_ms_per_slice_x2"]
    return {
        "psnr_gain_x2_db": gain(2.0),
        "psnr_gain_x4_db": gain(4.0),
        "ssim_above_bicubic_every_scale": all(r["ssim"] > r["ssim_bicubic"] for r in result["scales"]),
        "params_ok": result["params"] <= TARGETS["max_params"],
        "interactive_ok": None if ms is None else ms <= limit,
        "interactive_cpu_1thread_ok": None if cpu_ms is None else cpu_ms <= limit,
    }


def run_benchmark(
    *, model: str = "sr_light", gan: str | None = None, scales=SCALES, quick: bool = False,
    degradation: str = "bicubic", seed: int = 0, threads: int = 2, timing: bool = True,
) -> dict[str, Any]:
    """The sr-bench JSON: {"params", "scales": [{"scale", "psnr", "ssim", "psnr_bicubic", ...}], ...}.

    `model` is the L1 model, `gan` its GAN-fine-tuned variant (default MODEL_gan when shipped).
    "psnr"/"ssim" are the L1 model's; "_brain" keys restrict to the brain mask. `timing=False` leaves the
    timing keys out (`timing_fields` adds them, e.g. later on a quiet machine).
    """
    for s in scales:
        check_bench_scale(s)
    torch.set_num_threads(threads)
    if gan is None and model_paths(f"{model}_gan")[0].exists():
        gan = f"{model}_gan"
    nets = {"model": load_model(model).to(memory_format=torch.channels_last)}  # as in `cached_model`
    if gan:
        nets["gan"] = load_model(gan).to(memory_format=torch.channels_last)
    slab = holdout_slab(model)
    if gan and holdout_slab(gan) != slab:
        raise ValueError(f"{model} and {gan} hold out different slabs")
    ks, slices, masks = holdout_slices(slab, quick)
    rows = evaluate(nets, slices, masks, scales=scales, degradation=degradation)
    out_rows = []
    for r in rows:
        row = {"scale": r["scale"]}
        for name, prefix in (("model", ""), ("gan", "_gan"), ("bicubic", "_bicubic"),
                             ("nearest", "_nearest")):
            for metric in ("psnr", "ssim"):
                for region in ("", "_brain"):
                    key = f"{metric}_{name}{region}"
                    if key in r:
                        row[f"{metric}{prefix}{region}"] = r[key]
        out_rows.append(row)
    result = {
        "model": model, "gan": gan, "params": count_parameters(nets["model"]), "degradation": degradation,
        "data_range": DATA_RANGE,
        "data": f"MNI152 T1 held-out axial slices k={ks[0]}..{ks[-1]} ({len(ks)} slices), normalised 0..1",
        "slices": ks, "quick": quick, "scales": out_rows,
    }
    if timing:
        result.update(timing_fields(nets["model"], seed=seed, threads=threads))
    result["targets"] = {"required": TARGETS, "reached": reached_targets(result)}
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of a run_benchmark result (brain-region and whole-slice PSNR/SSIM per scale)."""
    has_gan = result.get("gan") is not None
    head = ["scale", "PSNR ours", "PSNR GAN", "PSNR bicubic", "PSNR nearest", "SSIM ours", "SSIM GAN",
            "SSIM bicubic", "SSIM nearest"]
    if not has_gan:
        head = [h for h in head if "GAN" not in h]
    lines = []
    for region, suffix in (("whole slice", ""), ("brain", "_brain")):
        lines += [f"\n{result['model']} ({result['params']:,} parameters), {region}, {result['degradation']} "
                  f"degradation, {result['data']}, data_range {result['data_range']}:", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in result["scales"]:
            cells = [f"x{r['scale']:g}"]
            for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.4f}")):
                for prefix in ("", "_gan", "_bicubic", "_nearest"):
                    if prefix == "_gan" and not has_gan:
                        continue
                    cells.append(fmt.format(r[f"{metric}{prefix}{suffix}"]))
            lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n{result['ms_per_slice_x2']} ms per slice ({result['timing']}): "
                 f"{result['cpu_ms_per_slice_x2_1thread']} ms of CPU with 1 thread; 1-minute load average "
                 f"{result['load_average_1min']} on {result['cpus']} CPUs during the run.")
    return "\n".join(lines)
