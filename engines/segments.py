"""Per-label statistics of a segmentation: voxel count, physical volume and image mean ± SD inside.

One pass of `np.bincount` per slab of the volume (not one boolean mask per label), so a 197x233x189
volume takes well under a second and memory stays at a few slabs whatever the volume size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engines.errors import InputError

# Voxels per slab: keeps the int64/float64 temporaries of one slab near 100 MB at most.
_SLAB_VOXELS = 4_000_000
# Above this label value the labels are compacted with np.unique instead of indexing bincount by value.
_MAX_DIRECT_LABEL = 1 << 20


@dataclass(frozen=True)
class SegmentStats:
    """Statistics of one label.

    Attributes
    ----------
    label : int
        The label value (never 0: background is not a segment).
    name : str or None
        The label's name when names were given.
    voxels : int
        Number of voxels carrying the label.
    volume_ml : float
        voxels × voxel volume (|det| of the affine's 3x3 part, mm³) / 1000.
    mean, sd : float or None
        Mean and population standard deviation of the image inside the label; None without an image.
    """

    label: int
    name: str | None
    voxels: int
    volume_ml: float
    mean: float | None = None
    sd: float | None = None


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume of one voxel in mm³: |det| of the affine's linear (3x3) part, so rotation and shear count."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"affine must be 4x4, got shape {affine.shape}")
    return float(abs(np.linalg.det(affine[:3, :3])))


def _label_name(names: Sequence[str] | Mapping[int, str] | None, label: int) -> str | None:
    if names is None:
        return None
    if isinstance(names, Mapping):
        return names.get(label)
    return names[label] if 0 <= label < len(names) else None


def _merge(keys, count, mean, m2, keys_b, count_b, mean_b, m2_b):
    """Combine running (count, mean, M2) per label with one slab's (Chan et al. 1979 pairwise update)."""
    union = np.union1d(keys, keys_b)
    n = np.zeros(len(union), dtype=np.int64)
    mu = np.zeros(len(union))
    sq = np.zeros(len(union))
    at = np.searchsorted(union, keys)
    n[at], mu[at], sq[at] = count, mean, m2
    at_b = np.searchsorted(union, keys_b)
    n_a, mu_a = n[at_b], mu[at_b]
    total = n_a + count_b
    delta = mean_b - mu_a
    mu[at_b] = mu_a + delta * count_b / total
    sq[at_b] += m2_b + delta**2 * n_a * count_b / total
    n[at_b] = total
    return union, n, mu, sq


def segment_statistics(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    affine: np.ndarray,
    names: Sequence[str] | Mapping[int, str] | None = None,
) -> list[SegmentStats]:
    """Statistics of every non-zero label of `labels`, in increasing label order.

    Parameters
    ----------
    labels : array-like of int, shape (I, J, K)
        Segmentation; 0 is background and is skipped. Read slab by slab along axis 0, so a memory-mapped
        array is never loaded whole.
    image : array-like, shape (I, J, K), optional
        Intensities (e.g. HU) on the same grid; mean and SD are computed inside each label.
    affine : ndarray, shape (4, 4)
        Voxel index -> world mm; its determinant gives the voxel volume.
    names : sequence indexed by label, or mapping label -> name, optional
        E.g. ``volume.meta["label_names"]``.

    Returns
    -------
    list of SegmentStats
        One entry per label present; SD is the population SD, combined across slabs with Chan et al.'s
        pairwise update (no catastrophic cancellation of sum-of-squares formulas).
    """
    if labels.ndim != 3:
        raise InputError(f"labels must be 3D, got shape {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise InputError(f"labels must have an integer dtype, got {labels.dtype}")
    if image is not None and tuple(image.shape) != tuple(labels.shape):
        raise InputError(
            f"image shape {tuple(image.shape)} differs from labels shape {tuple(labels.shape)}: "
            "statistics need both on the same voxel grid"
        )
    mm3 = voxel_volume_mm3(affine)

    plane = int(np.prod(labels.shape[1:])) or 1
    step = max(1, _SLAB_VOXELS // plane)
    keys = np.zeros(0, dtype=np.int64)  # label values seen so far, sorted
    count = np.zeros(0, dtype=np.int64)
    mean = np.zeros(0)
    m2 = np.zeros(0)
    for start in range(0, labels.shape[0], step):
        lab = np.asarray(labels[start : start + step]).ravel()
        if lab.size == 0:
            continue
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0:
            raise InputError(f"labels must be non-negative, found {lo}")
        if hi <= _MAX_DIRECT_LABEL:
            bins = lab.astype(np.intp, copy=False)
            n_b = np.bincount(bins)
            present = keys_b = np.flatnonzero(n_b)
        else:  # sparse huge ids (instance segmentations): compact before counting
            keys_b, bins = np.unique(lab, return_inverse=True)
            n_b = np.bincount(bins)
            present = np.arange(len(keys_b))
        if image is None:
            mean_b = m2_b = np.zeros(len(present))
        else:
            x = np.asarray(image[start : start + step], dtype=np.float64).ravel()
            with np.errstate(invalid="ignore", divide="ignore"):
                slab_mean = np.bincount(bins, weights=x, minlength=len(n_b)) / n_b
            m2_all = np.bincount(bins, weights=(x - slab_mean[bins]) ** 2, minlength=len(n_b))
            mean_b, m2_b = slab_mean[present], m2_all[present]
        keys, count, mean, m2 = _merge(keys, count, mean, m2, keys_b.astype(np.int64), n_b[present],
                                       mean_b, m2_b)

    out = []
    for idx, key in enumerate(keys):
        label = int(key)
        if label == 0:
            continue
        n = int(count[idx])
        out.append(
            SegmentStats(
                label=label,
                name=_label_name(names, label),
                voxels=n,
                volume_ml=n * mm3 / 1000.0,
                mean=None if image is None else float(mean[idx]),
                sd=None if image is None else float(np.sqrt(m2[idx] / n)),
            )
        )
    return out
