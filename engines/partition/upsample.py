"""Upsampling on blocks by an integer factor.

Nearest: output o copies input floor(o / s), inside the same block - no halo. Trilinear: a halo of one
slice on split axes, then separable linear interpolation at the source coordinates PyTorch uses for the
whole volume (either align_corners), so block edges and the volume's border (clamped) come out as in
the unpartitioned op.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.partition.halo import halo_exchange
from engines.partition.mesh import SpatialMesh
from engines.partition.module import PartitionedModule

LINEAR_MODES = ("trilinear",)
NEAREST_MODES = ("nearest", "nearest-exact")


def integer_scale(layer: nn.Upsample) -> tuple[int, int, int]:
    """The layer's per-axis integer scale factor, or ValueError for sizes, fractions and other modes."""
    if layer.size is not None or layer.scale_factor is None:
        raise ValueError("an upsampling to a fixed output size is a global shape; use scale_factor instead")
    scale = layer.scale_factor if isinstance(layer.scale_factor, tuple | list) else (layer.scale_factor,) * 3
    if len(scale) != 3 or any(float(s) != int(s) or s < 1 for s in scale):
        raise ValueError(f"only integer scale factors can be partitioned; got {layer.scale_factor}")
    if layer.mode not in LINEAR_MODES + NEAREST_MODES:
        raise ValueError(f"upsampling mode {layer.mode!r} is not supported; "
                         f"use {LINEAR_MODES + NEAREST_MODES}")
    return tuple(int(s) for s in scale)  # type: ignore[return-value]


class PartitionedUpsample(PartitionedModule, nn.Upsample):
    """nn.Upsample (integer scale, nearest or trilinear) on one block."""

    @classmethod
    def from_module(cls, module: nn.Module, mesh: SpatialMesh, path: str) -> nn.Module:
        twin = super().from_module(module, mesh, path)
        twin.scale = integer_scale(twin)
        return twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode in NEAREST_MODES or not self.mesh.split_axes:
            return super().forward(x)
        padded = halo_exchange(x, self.mesh, {axis: (1, 1) for axis in self.mesh.split_axes})
        for axis in range(3):
            padded = _interpolate_axis(padded, axis, x.shape[x.ndim - 3 + axis], self.scale[axis],
                                       self.mesh, bool(self.align_corners))
        return padded


def _interpolate_axis(x: torch.Tensor, axis: int, extent: int, scale: int, mesh: SpatialMesh,
                      align_corners: bool) -> torch.Tensor:
    """Linear interpolation along one axis of a (halo-padded) block, at global source coordinates.

    `extent` is the block's unpadded extent; the block starts at global index coords[axis] * extent and
    carries one halo slice on each side when the axis is split.
    """
    dim = x.ndim - 3 + axis
    total = extent * mesh.shape[axis]
    start = mesh.coords[axis] * extent
    offset = 1 if axis in mesh.split_axes else 0
    out = torch.arange(start * scale, (start + extent) * scale, dtype=torch.float64, device=x.device)
    if align_corners:
        source = out * ((total - 1) / (total * scale - 1)) if total * scale > 1 else out * 0
    else:
        source = ((out + 0.5) / scale - 0.5).clamp(min=0)
    low = source.floor().clamp(max=total - 1)
    weight = (source - low).to(x.dtype)
    high = (low + 1).clamp(max=total - 1)
    shape = [1] * x.ndim
    shape[dim] = -1
    weight = weight.view(shape)
    below = x.index_select(dim, (low - start + offset).long())
    above = x.index_select(dim, (high - start + offset).long())
    return torch.lerp(below, above, weight)
