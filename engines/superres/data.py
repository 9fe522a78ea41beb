"""Training data: intensity normalisation, held-out slab, and patch pairs from the three planes.

Patches are cut from axial, coronal and sagittal slices of a volume (the MNI152 T1 shipped with nilearn,
or the user's own scan for "adapt to this scan"), flipped / rotated by 90 degrees, and degraded in torch.
The held-out slab (axial slices k0..k1-1 along the third voxel axis, plus a margin) is cut out of the volume
*before* any patch is taken, so no held-out voxel can reach training through a coronal or sagittal patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from engines.errors import InputError
from engines.superres.geometry import exact_fraction, exact_lr_size
from engines.superres.resample import degrade

# Percentiles mapped to 0 and 1 (robust to a few hot voxels; values are not clipped).
NORM_PERCENTILES = (0.5, 99.5)
# A patch is kept when at least this fraction of its pixels is above FOREGROUND_LEVEL (normalised).
FOREGROUND_FRACTION = 0.3
FOREGROUND_LEVEL = 0.05


def intensity_range(data: np.ndarray) -> tuple[float, float]:
    """(low, high) = the 0.5 and 99.5 percentiles of the finite values; InputError for a flat image."""
    values = np.asarray(data, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise InputError("the image has no finite values")
    lo, hi = (float(v) for v in np.percentile(finite, NORM_PERCENTILES))
    if not hi > lo:
        hi = float(finite.max())
        lo = float(finite.min())
    if not hi > lo:
        raise InputError(f"the image is constant ({lo}); there is nothing to super-resolve")
    return lo, hi


def normalise(data: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map `value_range` to [0, 1] linearly (float32, not clipped)."""
    lo, hi = value_range
    return ((np.asarray(data, dtype=np.float32) - lo) / (hi - lo)).astype(np.float32)


def training_blocks(volume: np.ndarray, holdout: tuple[int, int] | None, margin: int = 4) -> list[np.ndarray]:
    """The parts of `volume` (I, J, K) outside the held-out slab k0 - margin .. k1 + margin (third axis).

    Returns one or two blocks (below and above the slab); patches are only ever cut inside one block.
    """
    if holdout is None:
        return [volume]
    k0, k1 = holdout
    if not 0 <= k0 < k1 <= volume.shape[2]:
        raise ValueError(f"holdout {holdout} is not a slab of the {volume.shape[2]} slices along axis 2")
    lo, hi = max(0, k0 - margin), min(volume.shape[2], k1 + margin)
    return [b for b in (volume[:, :, :lo], volume[:, :, hi:]) if b.shape[2] > 0]


@dataclass
class Batch:
    """One training batch: high- and low-resolution patches with the scales between them."""

    hr: torch.Tensor  # (B, 1, H, W)
    lr: torch.Tensor  # (B, 1, h, w) with H = h * sy, W = w * sx exactly
    sx: float
    sy: float
    degradation: str


class PatchSampler:
    """Random patch pairs from volumes' slices in the chosen planes, with flip/rot90 augmentation.

    Parameters
    ----------
    blocks : list of ndarray (I, J, K), float32, normalised
        Volumes (or training blocks of one) to cut patches from.
    planes : sequence of str
        Any of "axial" (slices along axis 2), "coronal" (axis 1), "sagittal" (axis 0).
    seed : int
        Seed of the sampler's own generator.
    """

    PLANE_AXIS: ClassVar[dict[str, int]] = {"sagittal": 0, "coronal": 1, "axial": 2}

    def __init__(self, blocks: list[np.ndarray], planes=("axial", "coronal", "sagittal"), seed: int = 0):
        unknown = [p for p in planes if p not in self.PLANE_AXIS]
        if unknown or not planes:
            raise ValueError(f"planes must be among {list(self.PLANE_AXIS)}, got {list(planes)}")
        self.blocks = [np.ascontiguousarray(b, dtype=np.float32) for b in blocks if b.ndim == 3]
        if not self.blocks:
            raise ValueError("no 3D block to sample from")
        self.planes = list(planes)
        self.rng = np.random.default_rng(seed)

    def _slice_shape(self, block: np.ndarray, axis: int) -> tuple[int, int]:
        return tuple(n for i, n in enumerate(block.shape) if i != axis)

    def patch(self, height: int, width: int) -> np.ndarray:
        """One augmented (height, width) patch, mostly foreground when the data allows it."""
        rot = bool(self.rng.integers(2))
        ph, pw = (width, height) if rot else (height, width)
        # (plane axis, block) pairs whose slices can hold the patch
        candidates = [(a, b) for a in (self.PLANE_AXIS[p] for p in self.planes) for b in self.blocks
                      if self._slice_shape(b, a)[0] >= ph and self._slice_shape(b, a)[1] >= pw]
        if not candidates:
            raise InputError(f"the training slices are smaller than a {height}x{width} patch")
        best, best_fg = None, -1.0
        for _ in range(20):
            axis, block = candidates[self.rng.integers(len(candidates))]
            sh = self._slice_shape(block, axis)
            k = self.rng.integers(block.shape[axis])
            y, x = self.rng.integers(sh[0] - ph + 1), self.rng.integers(sh[1] - pw + 1)
            patch = np.take(block, k, axis=axis)[y:y + ph, x:x + pw]
            fg = float((patch > FOREGROUND_LEVEL).mean())
            if fg > best_fg:
                best, best_fg = patch, fg
            if fg >= FOREGROUND_FRACTION:
                break
        out = np.rot90(best) if rot else best
        if self.rng.integers(2):
            out = out[::-1]
        if self.rng.integers(2):
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def batch(self, size: int, lr_patch: int, sx: float, sy: float, degradation: str) -> Batch:
        """`size` pairs at scales (sx, sy): low-resolution patches about lr_patch wide, grids aligned."""
        h, w = exact_lr_size(lr_patch, sy), exact_lr_size(lr_patch, sx)
        H = h * exact_fraction(sy).numerator // exact_fraction(sy).denominator
        W = w * exact_fraction(sx).numerator // exact_fraction(sx).denominator
        hr = torch.from_numpy(np.stack([self.patch(H, W) for _ in range(size)])[:, None])
        return Batch(hr=hr, lr=degrade(hr, (h, w), degradation), sx=sx, sy=sy, degradation=degradation)
