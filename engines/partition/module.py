"""What every partition-aware layer shares: its mesh, its place in the model, the block checks."""

from __future__ import annotations

import torch
from torch import nn

from engines.partition.mesh import AXES, SpatialMesh


class PartitionedModule:
    """Mixin for a torch layer subclass that runs on one block of a spatially partitioned volume.

    Subclassing the layer it replaces keeps parameter and buffer names, so a partitioned model's
    state_dict loads into the plain model and back.
    """

    mesh: SpatialMesh
    path: str

    @classmethod
    def from_module(cls, module: nn.Module, mesh: SpatialMesh, path: str) -> nn.Module:
        """The partitioned twin of `module`, sharing its parameters and buffers (not copies)."""
        twin = cls.__new__(cls)
        twin.__dict__.update(module.__dict__)
        twin.mesh = mesh
        twin.path = path or type(module).__name__
        return twin

    def check_divisible(self, x: torch.Tensor, strides: tuple[int, ...]) -> None:
        """Raise ValueError unless the block's extent along each split axis is a multiple of its stride."""
        for axis in self.mesh.split_axes:
            extent = x.shape[x.ndim - 3 + axis]
            if extent % strides[axis]:
                raise ValueError(
                    f"{self.path} ({type(self).__name__}): the block is {extent} voxels along {AXES[axis]}, "
                    f"not a multiple of its stride {strides[axis]}; each block must be a multiple of the "
                    f"model's total downsampling (required_multiple) - pad the volume with pad_to_multiple")
