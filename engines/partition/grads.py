"""Weight gradients of a partitioned model: each rank's are partial sums over its block; add them up."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from engines.partition.mesh import SpatialMesh


def sum_gradients(model: nn.Module, mesh: SpatialMesh) -> None:
    """Sum parameter gradients over the spatial ranks and average them over data-parallel replicas.

    One all-reduce over all ranks per dtype/device, on a flat buffer. A parameter without a gradient
    counts as zeros, so every rank contributes the same buffer layout.
    """
    if mesh.world_size == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    buckets: dict[tuple, list[nn.Parameter]] = {}
    for p in params:
        buckets.setdefault((p.dtype, p.device), []).append(p)
    for group in buckets.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        dist.all_reduce(flat)
        if mesh.data_parallel > 1:
            flat /= mesh.data_parallel
        offset = 0
        for p in group:
            p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()
