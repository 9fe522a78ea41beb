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
    model_multiple: tuple[int, int, int] | None = None  # the whole model's (required_multiple), for messages

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
                needed = (f"{self.model_multiple[axis]} voxels along {AXES[axis]}" if self.model_multiple
                          else "required_multiple(model)")
                raise ValueError(
                    f"{self.path} ({type(self).__name__}): the block reaches it {extent} voxels deep along "
                    f"{AXES[axis]}, not a multiple of its stride {strides[axis]}: each block must be a "
                    f"multiple of the model's total downsampling, {needed} - pad the volume with "
                    "pad_to_multiple")
