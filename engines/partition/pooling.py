"""Pooling on blocks: with kernel == stride and no padding each output reads one block only, so no halo;
a block's extent must be a multiple of the stride, checked on every call."""

from __future__ import annotations

import torch
from torch import nn

from engines.partition.mesh import SpatialMesh
from engines.partition.module import PartitionedModule


def _triple(value: int | tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value, value)  # type: ignore[return-value]


def check_pool(layer: nn.MaxPool3d | nn.AvgPool3d) -> tuple[int, int, int]:
    """The pool's stride, or ValueError if it needs a halo (kernel != stride, padding, dilation) or returns
    max indices (they would count within the block, not the volume)."""
    if getattr(layer, "return_indices", False):
        raise ValueError("return_indices=True is not supported: the indices would be the block's, not the "
                         "volume's")
    kernel, stride = _triple(layer.kernel_size), _triple(layer.stride or layer.kernel_size)
    padding, dilation = _triple(layer.padding), _triple(getattr(layer, "dilation", 1))
    if kernel != stride or any(padding) or dilation != (1, 1, 1):
        raise ValueError(f"pooling with kernel {kernel}, stride {stride}, padding {padding}, dilation "
                         f"{dilation} is not supported: only kernel == stride, no padding, no dilation")
    return stride


class _BlockPooling(PartitionedModule):
    """Pooling with kernel == stride on one block: no halo; the block must be a multiple of the stride."""

    block_stride: tuple[int, int, int]

    @classmethod
    def from_module(cls, module: nn.Module, mesh: SpatialMesh, path: str) -> nn.Module:
        twin = super().from_module(module, mesh, path)
        twin.block_stride = check_pool(twin)
        return twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_divisible(x, self.block_stride)
        return super().forward(x)  # type: ignore[misc]


class PartitionedMaxPool3d(_BlockPooling, nn.MaxPool3d):
    """nn.MaxPool3d (kernel == stride) on one block."""


class PartitionedAvgPool3d(_BlockPooling, nn.AvgPool3d):
    """nn.AvgPool3d (kernel == stride) on one block."""
