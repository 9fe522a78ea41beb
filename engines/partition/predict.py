"""Labels for a whole volume from a trained network: partitioned over the job's ranks window by window, or
in one process with MONAI's sliding-window inference (predict-seg: another scan, no ranks at hand), written
as NIfTI with the image's affine."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from engines.errors import InputError
from engines.label_maps import map_dtype, to_values
from engines.memory import available_memory_bytes, peak_rss_mb, release_free_heap, reset_peak_rss
from engines.partition.checkpoint import check_config, load_checkpoint
from engines.partition.data import BlockFile
from engines.partition.mesh import SpatialMesh
from engines.partition.models import build_model
from engines.partition.pad import pad_to_multiple


def window_tiling(extent: int, window: int, margin: int) -> list[tuple[int, slice]]:
    """Windows along one axis and the part of each whose labels are kept.

    Windows of `window` voxels start every ``window - 2 * margin`` (the last flush with the volume's end);
    each keeps what follows the previous one's part up to `margin` voxels before its own end (the last: up
    to the end), so every voxel is labelled from a window in which it has at least `margin` voxels of
    context on both sides, or the volume's border. Returns (start, kept) pairs, kept in global indices;
    the kept parts tile ``range(extent)``.
    """
    if window >= extent:
        return [(0, slice(0, extent))]
    starts = [*range(0, extent - window, max(1, window - 2 * margin)), extent - window]
    tiles, low = [], 0
    for start in starts:
        high = extent if start == starts[-1] else start + window - margin
        tiles.append((start, slice(low, high)))
        low = high
    return tiles


MEMORY_SHARE = 0.7  # of a rank's free memory that a prediction window may take


@torch.no_grad()
def _window_bytes_per_voxel(model: nn.Module, image: BlockFile, window: Sequence[int], mesh: SpatialMesh,
                            device: torch.device) -> float | None:
    """Memory one no-gradient forward takes per voxel of this rank's block, measured on the first window
    (its fixed costs included, so it overestimates for larger windows); None where it cannot be measured."""
    x = torch.from_numpy(image.read(mesh.block_slices(window)))[None, None].to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        model(x).argmax(1)
        used = torch.cuda.max_memory_allocated(device) - before
    else:
        # Training's freed activations stay in the C heap, where this forward would reuse them unseen:
        # hand them back first, or the measure comes out near zero.
        if not release_free_heap() or (before_mb := reset_peak_rss()) is None:
            return None
        model(x).argmax(1)
        used = (peak_rss_mb() - before_mb) * 2**20
    return max(used, 1) / x[0, 0].numel()


def _free_bytes(device: torch.device) -> int | None:
    """Memory this rank may still use: its GPU's free memory, or its share of the machine's (None where that
    cannot be read; 0 where a memory limit is reached)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        return torch.cuda.mem_get_info(device)[0]
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    available = available_memory_bytes()
    return None if available is None else available // local_ranks


def window_options(extent: int, low: int, block: int) -> list[tuple[int, int]]:
    """(windows, window) pairs along one axis of the volume: for each number of windows that window_tiling
    (margin window // 8, as predict_partitioned uses) can cover `extent` with, the smallest window that does,
    a multiple of `block` from `low` (itself one) up to the whole extent."""
    options: dict[int, int] = {}
    for window in [*range(min(low, extent), extent, block), extent]:
        options.setdefault(len(window_tiling(extent, window, window // 8)), window)
    return sorted(options.items())


def best_window(shape: Sequence[int], crop: Sequence[int], block: Sequence[int], voxels: float
                ) -> tuple[int, int, int]:
    """Among windows of at most `voxels` voxels (multiples of `block`, at least the crop), the one that gives
    every voxel the most context (the largest smallest extent over the axes it tiles: a voxel keeps an eighth
    of it on each side), then computes the fewest voxels in all (windows x window voxels, the overlaps
    included), then takes the fewest windows; the training crop when none fits. Context first: the fewest
    voxels alone would favour long windows that are crop-thin on two axes.
    """
    # The most context that fits: with context c an axis is whole (c >= its extent) or tiled by >= c voxels.
    def lowest(context: int) -> list[int]:  # each axis's smallest window giving at least `context`
        return [n if context >= n else min(n, -(-max(context, c) // b) * b)
                for n, c, b in zip(shape, crop, block, strict=True)]

    sizes = {w for n, c, b in zip(shape, crop, block, strict=True) for w in [*range(c, n, b), n]}
    context = next((c for c in sorted(sizes | {max(shape) + 1}, reverse=True)
                    if math.prod(lowest(c)) <= voxels), None)
    if context is None:
        return tuple(min(c, n) for c, n in zip(crop, shape, strict=True))  # type: ignore[return-value]
    best: tuple[tuple[int, int], tuple[int, int, int]] | None = None
    axes = (window_options(n, low, b) if context < n else [(1, n)]
            for n, low, b in zip(shape, lowest(context), block, strict=True))
    for choice in itertools.product(*axes):
        window = tuple(w for _, w in choice)
        if math.prod(window) <= voxels:
            key = (math.prod(n * w for n, w in choice), math.prod(n for n, _ in choice))
            if best is None or key < best[0]:
                best = key, window  # type: ignore[assignment]
    return best[1]  # type: ignore[index,return-value]


def prediction_window(model: nn.Module, image: BlockFile, crop: Sequence[int], block: Sequence[int],
                      mesh: SpatialMesh, device: torch.device | str) -> tuple[int, int, int]:
    """The window to predict with: the whole volume if its no-gradient forward fits every rank's free
    memory (MEMORY_SHARE of it, at the memory per voxel measured on one crop-sized window), else the window
    that fits with the most context and the least computing (best_window), down to the training crop.
    The same on every rank of the replica: they agree on the smallest budget (a collective over its spatial
    group).

    Parameters
    ----------
    crop : (int, int, int)
        The training crop: its step fitted, so a window of it does too.
    block : (int, int, int)
        The mesh x the model's downsampling: every window extent stays a multiple of it.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        per_voxel = _window_bytes_per_voxel(model, image, crop, mesh, device)
    finally:
        model.train(was_training)
    # Voxels of a whole window (all ranks' blocks) that this rank's share of it leaves within budget.
    free = _free_bytes(device) or 0  # unknown: the training crop, the smallest window
    voxels = 0.0 if per_voxel is None else MEMORY_SHARE * free / per_voxel * mesh.spatial_size
    if mesh.distributed:  # the most cautious rank decides
        agreed = torch.tensor([voxels], dtype=torch.float64, device=device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN, group=mesh.spatial_group)
        voxels = float(agreed)
    return best_window(image.shape, crop, block, voxels)


def label_types(classes: int) -> tuple[torch.dtype, np.dtype]:
    """The torch and numpy types a map of class indices 0..classes-1 is kept in: uint8 up to 256 classes,
    wider beyond (more would wrap in uint8; torch has no wider unsigned type to keep an argmax in)."""
    as_numpy = map_dtype(np.array([classes - 1]))
    return (torch.uint8 if as_numpy == np.uint8 else torch.int32), as_numpy


@torch.no_grad()
def predict_partitioned(model: nn.Module, image: BlockFile, window: Sequence[int], mesh: SpatialMesh,
                        device: torch.device | str) -> np.ndarray | None:
    """Argmax labels of a whole volume, window by window, each window split over the replica's ranks.

    A window the size of the training crop needs no more memory than training did (less: no gradients),
    however large the volume; when the crop is the whole volume there is one window. Neighbouring windows
    overlap by a quarter of the window (an eighth on each side), and each voxel's label comes from a window
    where it has that much context (see window_tiling).

    Parameters
    ----------
    model : nn.Module
        Partitioned over `mesh` (partition_model); put in eval mode for the call.
    image : BlockFile
        The whole volume, normalised like the training input, padded to the mesh x the model's multiple.
    window : (int, int, int)
        Window extents, each a multiple of the mesh x the model's downsampling and at most the volume's.

    Returns
    -------
    ndarray, shape of `image`, `label_types` of the classes, on the replica's first rank; None on the others.
    """
    tiles = [window_tiling(n, w, w // 8) for n, w in zip(image.shape, window, strict=True)]
    inner = mesh.block_slices(window)
    first = mesh.rank == mesh.replica_ranks()[0]
    whole = None
    was_training = model.training
    model.eval()
    try:
        for corner in itertools.product(*tiles):
            starts = [start for start, _ in corner]
            box = tuple(slice(o + s.start, o + s.stop) for o, s in zip(starts, inner, strict=True))
            x = torch.from_numpy(image.read(box))[None, None].to(device)
            logits = model(x)
            as_torch, as_numpy = label_types(logits.shape[1])
            labels = logits.argmax(1)[0].to(as_torch)
            labels = mesh.gather(labels) if mesh.distributed else labels
            if first:
                whole = np.zeros(image.shape, as_numpy) if whole is None else whole
                kept = tuple(keep for _, keep in corner)
                local = tuple(slice(k.start - o, k.stop - o) for k, o in zip(kept, starts, strict=True))
                whole[kept] = labels.cpu().numpy()[local]
    finally:
        model.train(was_training)
    return whole


def trained_values(config: dict) -> tuple[int, ...]:
    """The label value of each class a training job's network predicts (class c is the c-th); 0..C-1 for
    checkpoints that predate the list."""
    return tuple(config.get("values", range(config["classes"])))


def load_trained_model(out: str | os.PathLike, *, device: torch.device | str = "cpu"
                       ) -> tuple[nn.Module, dict]:
    """The plain (unpartitioned) network of a training folder's checkpoint, and the job's config."""
    checkpoint = load_checkpoint(out, map_location=device)
    config = check_config(checkpoint, ("model", "width", "classes", "multiple", "crop", "mean", "std"))
    model = build_model(config["model"], in_channels=config.get("in_channels", 1),
                        out_channels=config["classes"], width=config["width"])
    checkpoint.load_weights(model)
    return model.to(device).eval(), config


OVERLAP = 0.25  # predict-seg's sliding windows overlap by a quarter
UNKNOWN_FREE_BYTES = 2 << 30  # taken as free where the free memory cannot be read


def sliding_interval(extent: int, roi: int, overlap: float) -> int:
    """The step between MONAI's sliding windows along an axis (monai.inferers.utils._get_scan_interval)."""
    return roi if roi == extent else max(1, int(roi * (1 - overlap)))


def shortest_tile(extent: int, roi: int, interval: int) -> int:
    """The fewest voxels a tile of `sliding_tiles` spans along an axis (or the whole axis, if shorter): a
    window and ceil(roi / interval) steps, so that every tile, the last included, labels some voxels."""
    return min(extent, roi + math.ceil(roi / interval) * interval)


def sliding_tiles(extent: int, roi: int, interval: int, length: int) -> list[tuple[slice, slice]]:
    """Tiles of at most `length` voxels (or `shortest_tile`, if more; the last one may be shorter, down to
    a window) along one axis of a sliding window, each with the part of the axis it labels.

    MONAI's windows start at multiples of `interval`, the last one moved back to end at `extent`. Each
    tile starts at such a multiple and holds whole windows, so run on the tile alone the sliding window
    places the same windows there; the part it labels is the voxels every covering window of which lies
    inside the tile (from a window less an interval past its start to an interval past its last window's
    start), so they get what one pass over the whole axis gives them. The parts cover the axis once, in
    order. Returns (tile, part) pairs.
    """
    span = roi + max(math.ceil(roi / interval), (length - roi) // interval) * interval
    tiles, start, kept = [], 0, 0
    while extent - start > max(span, length):
        stop = start + span
        end = min(stop - roi + interval, extent - roi)  # the window moved back covers what follows
        if end <= kept:  # only the voxels under the last window are left: the tile from here ends the axis
            break
        tiles.append((slice(start, stop), slice(kept, end)))
        start, kept = (end - roi + interval) // interval * interval, end
    tiles.append((slice(start, extent), slice(kept, extent)))
    return tiles


def tile_lengths(shape: Sequence[int], roi: Sequence[int], interval: Sequence[int], classes: int,
                 budget: int) -> list[int]:
    """Tile extents whose network output (`classes` float32 logits and a weight per voxel) fits in `budget`
    bytes: the whole volume when it does, else split along the first axis, then the second, the third, none
    shorter than `shortest_tile` (so the output may pass `budget` when even the shortest tiles do)."""
    lengths = list(shape)
    per_voxel = (classes + 1) * 4
    for axis in range(len(lengths)):
        if math.prod(lengths) * per_voxel <= budget:
            break
        fits = budget // (per_voxel * (math.prod(lengths) // lengths[axis]))
        lengths[axis] = min(shape[axis], max(fits, shortest_tile(shape[axis], roi[axis], interval[axis])))
    return lengths


def _tile_labels(model: nn.Module, x: torch.Tensor, tile: tuple[slice, ...], part: tuple[slice, ...],
                 roi_size: Sequence[int], as_torch: torch.dtype) -> torch.Tensor:
    """The argmax labels of `part` (relative to the tile) of a sliding window over `tile` of `x`; a function
    of its own so that the tile's output is gone before the next tile's is made."""
    from monai.inferers import sliding_window_inference

    logits = sliding_window_inference(x[(0, 0, *tile)][None, None], roi_size, 1, model, overlap=OVERLAP,
                                      mode="gaussian")
    return logits[(0, slice(None), *part)].argmax(0).to(as_torch).cpu()


@torch.no_grad()
def predict_sliding_window(out: str | os.PathLike, image: np.ndarray, *,
                           roi_size: tuple[int, int, int] | None = None,
                           device: torch.device | str = "cpu",
                           trained: tuple[nn.Module, dict] | None = None) -> np.ndarray:
    """Labels of a whole volume in one process, window by window (MONAI sliding_window_inference, Gaussian
    weights, windows overlapping by OVERLAP).

    MONAI holds the network's output for the whole input, 4 bytes per voxel and class (17 GB for 32 classes
    at 512^3): a volume whose output would take more than half the free memory (of the GPU, on one) is
    labelled in tiles (`sliding_tiles`, `tile_lengths`) that each fit, one at a time, and that give each
    voxel the label one whole-volume pass gives it. The windows near a border between tiles are computed
    for both.

    Parameters
    ----------
    out : path
        The training output folder (its checkpoint holds the weights and the normalisation).
    image : ndarray, shape (D, H, W)
        Raw intensities, on the grid the network was trained on.
    roi_size : (int, int, int), optional
        Window; by default the training crop, capped at the volume padded to the model's multiple.
    trained : (network, config), optional
        What `load_trained_model(out)` gives, when the caller has it already.

    Returns
    -------
    ndarray, shape (D, H, W): the label values trained on (`label_types` of the classes when those are
    0..C-1, else engines.label_maps.map_dtype of the values).
    """
    model, config = load_trained_model(out, device=device) if trained is None else trained
    multiple = config["multiple"]
    mean, std = np.float32(config["mean"]), np.float32(config["std"])
    normalised = (np.asarray(image, dtype=np.float32) - mean) / std
    padded = pad_to_multiple(normalised, multiple, value=float(-config["mean"] / config["std"]))
    if roi_size is None:
        roi_size = tuple(min(c, n) for c, n in zip(config["crop"], padded.shape, strict=True))
    if tuple(roi_size) == tuple(multiple):
        raise InputError("the image, padded to the network's multiple, is no larger than the network's "
                         f"whole downsampling ({' x '.join(map(str, multiple))} voxels): its deepest layer "
                         "would see one voxel; the image is too small for this network")
    x = torch.from_numpy(np.ascontiguousarray(padded))[None, None].to(device)
    as_torch, as_numpy = label_types(config["classes"])
    labels = np.zeros(padded.shape, as_numpy)
    intervals = [sliding_interval(n, r, OVERLAP) for n, r in zip(padded.shape, roi_size, strict=True)]
    free = _free_bytes(torch.device(device))
    budget = (UNKNOWN_FREE_BYTES if free is None else free) // 2
    lengths = tile_lengths(padded.shape, roi_size, intervals, config["classes"], budget)
    axes = [sliding_tiles(*axis) for axis in zip(padded.shape, roi_size, intervals, lengths, strict=True)]
    for corner in itertools.product(*axes):
        tile = tuple(t for t, _ in corner)
        part = tuple(slice(k.start - t.start, k.stop - t.start) for t, k in corner)
        labels[tuple(k for _, k in corner)] = _tile_labels(model, x, tile, part, roi_size, as_torch)
    return to_values(labels[: image.shape[0], : image.shape[1], : image.shape[2]], trained_values(config))


def write_labels(labels: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a label volume as NIfTI with the image's affine (so it overlays the image exactly)."""
    from engines.io import write_volume
    from engines.volume import Volume

    write_volume(Volume(data=np.asarray(labels), affine=affine), path)
    return Path(path)


SPACING_TOLERANCE = 0.1  # a voxel size this much off the training image's is resampled to it


@dataclass(frozen=True)
class TrainedGrid:
    """How an image is brought to the grid a network was trained on, and back."""

    own: np.ndarray  # the image's axis orientation (nibabel ornt)
    trained: np.ndarray  # the training image's, which the image is turned to
    shape: tuple[int, ...] | None  # the image's shape at the training voxel size (its own axes); None: kept
    notes: list[str]


def trained_grid(affine: np.ndarray, shape: Sequence[int], config: dict, *, resample: bool = True
                 ) -> TrainedGrid:
    """The grid a network trained on `config`'s image sees an image of `affine` and `shape` on.

    A network sees voxels, not millimetres: the same scan stored LPS instead of RAS would be labelled
    mirrored, and one with voxels of another size shows it anatomy at a scale it never learnt. So the image
    is turned to the training image's axis order and directions, and, where a voxel size (along the same
    axes) is more than SPACING_TOLERANCE off the training image's, resampled to the training voxel size over
    the same field of view (when `resample`; else only noted). A single slice's thickness is left alone.
    Notes say what was done, and what cannot be (a checkpoint that predates recording the training grid).
    """
    from nibabel.orientations import io_orientation, ornt_transform

    own = io_orientation(affine)
    if "affine" not in config:
        return TrainedGrid(own, own, None, [
            "the checkpoint does not record the training image's grid (it predates that): the image is "
            "labelled in its stored voxel order and voxel size, which must be the training image's"])
    trained_affine = np.asarray(config["affine"], dtype=np.float64)
    trained = io_orientation(trained_affine)
    # voxel sizes along the image's own axes, and the training image's along the axes they are turned to
    spacing, trained_spacing = (np.sqrt((a[:3, :3] ** 2).sum(axis=0)) for a in (affine, trained_affine))
    trained_spacing = trained_spacing[ornt_transform(own, trained)[:, 0].astype(int)]
    extents = np.asarray(shape[:3])
    across = extents > 1  # a single slice has no thickness to compare
    if not np.any(np.abs(spacing / trained_spacing - 1)[across] > SPACING_TOLERANCE):
        return TrainedGrid(own, trained, None, [])
    sizes = (f"its voxels are {_mm(spacing)} mm, the training image's {_mm(trained_spacing)} mm along the "
             "same axes")
    if not resample:
        return TrainedGrid(own, trained, None, [
            f"{sizes}: the network sees anatomy at another scale; resample the image to the training "
            "spacing for labels to trust"])
    resampled = np.where(across, np.maximum(1, np.rint(extents * spacing / trained_spacing)), extents)
    resampled = tuple(int(n) for n in resampled)
    return TrainedGrid(own, trained, resampled, [
        f"{sizes}: labelled at the training voxel size ({' x '.join(map(str, resampled))} voxels, linear "
        "interpolation), the labels brought back to the image's grid (nearest neighbour)"])


def _mm(spacing: np.ndarray) -> str:
    return " x ".join(f"{v:.3g}" for v in spacing)


def _resized(array: np.ndarray, shape: Sequence[int], *, labels: bool) -> np.ndarray:
    """`array` resampled to `shape` over the same field of view (scikit-image: voxel edges aligned):
    intensities linearly, smoothed first along the axes it shrinks; labels by nearest neighbour."""
    from skimage.transform import resize

    if labels:
        return resize(array, shape, order=0, preserve_range=True, anti_aliasing=False)  # keeps the dtype
    return resize(np.asarray(array, np.float32), shape, order=1, preserve_range=True)


def predict_volume(out: str | os.PathLike, image_path: str, labels_path: str | os.PathLike, *,
                   device: torch.device | str = "cpu", resample: bool = True) -> tuple[Path, list[str]]:
    """Read an image, predict its labels with a training folder's checkpoint (sliding window) on the grid
    the network was trained on (trained_grid), write them on the image's own grid.

    Returns the labels file and what reading and regridding the image found (a 4D file: its first volume is
    labelled). Raises InputError naming the image when it holds NaN or infinite values: every window holding
    one would normalise to NaN and come out as class 0.
    """
    from nibabel.orientations import apply_orientation, ornt_transform

    from engines.io import read_volume
    from engines.volume import PLANAR

    volume = read_volume(image_path)
    image = np.asarray(volume.data)
    if (bad := int(np.count_nonzero(~np.isfinite(image)))) > 0:
        raise InputError(f"the image holds NaN or infinite values ({bad} voxels); prediction needs finite "
                         f"intensities", image_path)
    trained = load_trained_model(out, device=device)
    grid = trained_grid(volume.affine, image.shape, trained[1], resample=resample)
    seen = image if grid.shape is None else _resized(image, grid.shape, labels=False)
    try:
        labels = predict_sliding_window(out, apply_orientation(seen, ornt_transform(grid.own, grid.trained)),
                                        device=device, trained=trained)
    except InputError as exc:
        resampled = "" if grid.shape is None else (
            f" (resampled to the training voxel size: {' x '.join(map(str, grid.shape))} voxels; "
            "--no-resample labels its own voxels)")
        raise InputError(exc.problem + resampled, image_path) from None
    labels = apply_orientation(labels, ornt_transform(grid.trained, grid.own))  # back to the image's order
    if grid.shape is not None:
        labels = _resized(labels, image.shape, labels=True)
    if volume.meta.get(PLANAR):  # a 2D image gets 2D labels, as its own shape
        labels = labels[:, :, 0]
    return write_labels(labels, volume.affine, labels_path), [*volume.warnings, *grid.notes]
