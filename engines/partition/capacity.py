"""How many ranks a volume needs: per-rank memory = fixed cost + measured cost per voxel x block voxels.

The fixed cost (weights, gradients, optimizer state, workspace) does not shrink with partitioning; the
per-voxel cost (activations, their gradients, the data) divides by the number of blocks. Both are fitted
from peak memory measured at two or more volume sizes (benchmarks/partition_gpu.py). Halo buffers are a
few slices per block and are left out, which is why `ranks_needed` keeps a headroom.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

GIB = 2**30
# Memory nvidia-smi reports for the two GPU classes of the README table (H100 80 GB, H200 141 GB).
GPUS = {"80 GB": 81559 * 2**20, "141 GB": 143771 * 2**20}


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of one rank = fixed_bytes + bytes_per_voxel x voxels in its block."""

    fixed_bytes: float
    bytes_per_voxel: float

    @classmethod
    def fit(cls, voxels: Sequence[float], peak_bytes: Sequence[float]) -> MemoryModel:
        """Least-squares line through measured (block voxels, peak bytes) points.

        A negative intercept (measurement noise) is replaced by the line through the origin that covers
        every point, so the model never promises less memory than was measured.

        Raises
        ------
        ValueError
            Fewer than two distinct sizes, or mismatched lengths.
        """
        if len(voxels) != len(peak_bytes) or len(set(voxels)) < 2:
            raise ValueError(f"need peak memory at two or more volume sizes; got voxels {list(voxels)} and "
                             f"peaks {list(peak_bytes)}")
        n = len(voxels)
        mean_v, mean_p = sum(voxels) / n, sum(peak_bytes) / n
        slope = (sum((v - mean_v) * (p - mean_p) for v, p in zip(voxels, peak_bytes, strict=True))
                 / sum((v - mean_v) ** 2 for v in voxels))
        fixed = mean_p - slope * mean_v
        if fixed < 0:
            return cls(0.0, max(p / v for v, p in zip(voxels, peak_bytes, strict=True)))
        return cls(fixed, slope)

    def per_rank_bytes(self, shape: Sequence[int], mesh: Sequence[int]) -> float:
        """Predicted peak bytes of each rank when a volume of `shape` is split into `mesh` blocks."""
        return self.fixed_bytes + self.bytes_per_voxel * math.prod(shape) / math.prod(mesh)


def valid_splits(extent: int, multiple: int) -> list[int]:
    """Block counts along an axis of `extent` voxels giving equal blocks, each a multiple of `multiple`."""
    return [n for n in range(1, extent // multiple + 1) if extent % n == 0 and (extent // n) % multiple == 0]


def ranks_needed(shape: Sequence[int], model: MemoryModel, device_bytes: float, *, multiple: int = 16,
                 usable: float = 0.9) -> tuple[int, tuple[int, int, int]] | None:
    """The fewest ranks (and a mesh for them) whose per-rank peak fits `usable` x `device_bytes`.

    Parameters
    ----------
    shape : (D, H, W)
        The whole volume.
    multiple : int
        Each block's extent must be a multiple of this (the network's total downsampling, 16 for
        BasicUNet); only such meshes are considered.
    usable : float
        Fraction of the device memory the tensors may take (the rest: CUDA context, allocator
        fragmentation, communication buffers, halos).

    Returns
    -------
    (ranks, (mD, mH, mW)) or None
        Among meshes with the fewest ranks, the one with the least halo surface per block, then the one
        that splits D, then H, most (as 2x1x1 rather than 1x1x2). None when no mesh fits (the fixed
        cost alone exceeds the budget, or the blocks cannot get small enough).
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive extents; got {tuple(shape)}")
    if not 0 < usable <= 1:
        raise ValueError(f"usable must be in (0, 1]; got {usable}")
    budget = usable * device_bytes
    best = None
    for mesh in itertools.product(*(valid_splits(n, multiple) for n in shape)):
        if model.per_rank_bytes(shape, mesh) > budget:
            continue
        block = [n // m for n, m in zip(shape, mesh, strict=True)]
        surface = sum(block[(a + 1) % 3] * block[(a + 2) % 3] for a in range(3) if mesh[a] > 1)
        key = (math.prod(mesh), surface, tuple(-m for m in mesh), mesh)
        best = key if best is None or key < best else best
    return None if best is None else (best[0], best[3])
