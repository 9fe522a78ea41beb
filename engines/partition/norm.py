"""Instance, group and batch normalisation with statistics over the whole volume, not the block.

Forward all-reduces per-(sample, group) sums over the spatial group (batch norm: over all ranks, as
SyncBatchNorm), in two passes - the mean, then the sum of squared deviations - so float32 variance does
not suffer from cancellation. Backward all-reduces the two sums its input gradient needs. Weight and bias
gradients stay local partial sums, added up over ranks with the other parameters (grads.sum_gradients).
Like the native kernels, only the input is kept for backward.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from engines.partition.mesh import SpatialMesh
from engines.partition.module import PartitionedModule


class GlobalNormFunction(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with mean, var over the whole partitioned volume.

    Statistics are per (sample, group) over the group's channels and all voxels (`batch=False`: instance
    norm is one group per channel), or per channel over samples and voxels (`batch=True`).
    Returns y and the (non-differentiable) mean and biased variance, shape (N or 1, groups).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,  # type: ignore[override]
                groups: int, batch: bool, eps: float, process_group) -> tuple[torch.Tensor, ...]:
        n_batch, channels = x.shape[:2]
        xg = x.reshape(n_batch, groups, channels // groups, -1)
        dims = (0, 2, 3) if batch else (2, 3)
        count = (n_batch if batch else 1) * xg.shape[2] * xg.shape[3] * dist.get_world_size(process_group)
        # statistics in float32 at least, as the native kernels keep them: float16 sums pass 65504 (inf)
        total = xg.sum(dims, keepdim=True, dtype=torch.promote_types(x.dtype, torch.float32))
        dist.all_reduce(total, group=process_group)
        mean = total / count
        sq = (xg - mean).square_().sum(dims, keepdim=True)
        dist.all_reduce(sq, group=process_group)
        var = sq / count
        rstd = (var + eps).rsqrt()
        scale = rstd if weight is None else rstd * weight.view(1, groups, -1, 1)
        shift = -mean * scale if bias is None else bias.view(1, groups, -1, 1) - mean * scale
        y = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # not a view: inplace activations may follow
        torch.addcmul(shift, xg, scale, out=y.view(xg.shape))
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.groups, ctx.dims, ctx.count, ctx.process_group = groups, dims, count, process_group
        ctx.has_bias = bias is not None
        mean, var = mean.reshape(-1, groups).clone(), var.reshape(-1, groups)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, _grad_mean, _grad_var):  # type: ignore[override]
        x, weight, mean, rstd = ctx.saved_tensors
        groups, dims, count = ctx.groups, ctx.dims, ctx.count
        n_batch, channels = x.shape[:2]
        xg = x.reshape(n_batch, groups, channels // groups, -1)
        gy = grad.reshape(xg.shape)
        xhat = (xg - mean).mul_(rstd)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # Sums over each channel's voxels first (in float32 at least): besides xhat, one product is the only
        # full-size temporary.
        gy_xhat = (gy * xhat).sum(3, keepdim=True, dtype=xhat.dtype)  # (N, groups, channels per group, 1)
        gy_sum = gy.sum(3, keepdim=True, dtype=xhat.dtype)
        grad_w = gy_xhat.sum(0).reshape(-1) if need_w else None
        grad_b = gy_sum.sum(0).reshape(-1) if need_b and ctx.has_bias else None
        grad_x = None
        if need_x:
            w = None if weight is None else weight.view(1, groups, -1, 1)
            sums = torch.cat([t.sum(dims, keepdim=True) for t in ((gy_sum, gy_xhat) if w is None
                                                                    else (gy_sum * w, gy_xhat * w))], 0)
            dist.all_reduce(sums, group=ctx.process_group)
            mean_g, mean_gx = sums.chunk(2, 0)
            # (gy * weight - mean_g / count - xhat * mean_gx / count) * rstd, in place
            grad_x = gy * (rstd if w is None else rstd * w)
            grad_x.sub_(mean_g / count * rstd)
            grad_x.addcmul_(xhat, mean_gx / count * rstd, value=-1)
            grad_x = grad_x.reshape(x.shape)
        return grad_x, grad_w, grad_b, None, None, None, None


def global_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, *, groups: int,
                batch: bool, eps: float, process_group=None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalise a block (N, C, d, h, w) with whole-volume statistics; see `GlobalNormFunction`."""
    return GlobalNormFunction.apply(x, weight, bias, groups, batch, eps, process_group)


def _update_running(module: nn.Module, mean: torch.Tensor, var: torch.Tensor, count: int,
                    momentum: float) -> None:
    """Running-statistics update as torch's batch/instance norm does it (unbiased variance, mean over N)."""
    unbiased = var * (count / max(count - 1, 1))
    with torch.no_grad():
        for running, value in ((module.running_mean, mean), (module.running_var, unbiased)):
            running.mul_(1 - momentum).add_(value.mean(0).to(running.dtype), alpha=momentum)


class GlobalInstanceNorm3d(PartitionedModule, nn.InstanceNorm3d):
    """nn.InstanceNorm3d with per-sample, per-channel statistics over the whole volume."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uses_running = self.track_running_stats and not self.training
        if not self.mesh.split_axes or uses_running:  # one block: local = global
            y = super().forward(x)
        else:
            y, mean, var = global_norm(x, self.weight, self.bias, groups=x.shape[1], batch=False,
                                       eps=self.eps, process_group=self.mesh.spatial_group)
            if self.training and self.track_running_stats:
                # As F.instance_norm: momentum None means 0, and num_batches_tracked is left alone.
                _update_running(self, mean, var, x[0, 0].numel() * self.mesh.spatial_size,
                                self.momentum or 0.0)
        if self.training and self.track_running_stats and self.mesh.data_parallel > 1:
            _average_over_replicas(self)
        return y


def _average_over_replicas(module: nn.Module) -> None:
    """Running statistics averaged over the data-parallel replicas, as one network seeing all their samples
    would have them (the update is linear in the batch's mean; every replica's batch is the same size, and
    the ranks of one replica hold equal values, so the world mean is the replicas' mean)."""
    with torch.no_grad():
        for running in (module.running_mean, module.running_var):
            dist.all_reduce(running)
            running.div_(dist.get_world_size())


class GlobalGroupNorm(PartitionedModule, nn.GroupNorm):
    """nn.GroupNorm with per-sample, per-group statistics over the whole volume."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mesh.split_axes:
            return super().forward(x)
        return global_norm(x, self.weight, self.bias, groups=self.num_groups, batch=False, eps=self.eps,
                           process_group=self.mesh.spatial_group)[0]


class GlobalBatchNorm3d(PartitionedModule, nn.BatchNorm3d):
    """nn.BatchNorm3d with per-channel statistics over every rank's samples and blocks (SyncBatchNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uses_running = self.track_running_stats and not self.training
        if self.mesh.world_size == 1 or uses_running:
            return super().forward(x)
        y, mean, var = global_norm(x, self.weight, self.bias, groups=x.shape[1], batch=True, eps=self.eps)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            _update_running(self, mean, var, x.shape[0] * x[0, 0].numel() * self.mesh.world_size, momentum)
        return y


def make_global(module: nn.Module, mesh: SpatialMesh, path: str) -> nn.Module:
    """The whole-volume-statistics twin of an InstanceNorm3d, GroupNorm or BatchNorm3d."""
    for plain, twin in ((nn.InstanceNorm3d, GlobalInstanceNorm3d), (nn.GroupNorm, GlobalGroupNorm),
                        (nn.BatchNorm3d, GlobalBatchNorm3d)):
        if type(module) is plain:
            return twin.from_module(module, mesh, path)
    raise TypeError(f"{type(module).__name__} is not a supported normalisation")
