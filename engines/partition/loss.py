"""Dice + cross-entropy over the whole partitioned volume, and per-class Dice scores.

Each rank sums over its block; one all-reduce makes the global sums, from which every rank computes the
same loss. That loss is then a replicated value, so its gradient is too: the all-reduce passes gradients
through unchanged (`replicated_sum`), and each rank back-propagates into its own block.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from engines.partition.mesh import SpatialMesh


class ReplicatedSum(torch.autograd.Function):
    """Sum a tensor over a process group; every rank then holds (and differentiates) the same value."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, process_group) -> torch.Tensor:  # type: ignore[override]
        total = x.clone()
        dist.all_reduce(total, group=process_group)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def replicated_sum(x: torch.Tensor, mesh: SpatialMesh) -> torch.Tensor:
    """Sum `x` over the mesh's spatial group (differentiable; identity when the mesh has one block)."""
    return ReplicatedSum.apply(x, mesh.spatial_group) if mesh.spatial_size > 1 else x


def _flat_labels(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    n_batch = logits.shape[0]
    if labels.shape[-3:] != logits.shape[-3:] or labels.numel() != n_batch * logits[0, 0].numel():
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
    return labels.reshape(n_batch, -1).long()


def _weights(mask: torch.Tensor | None, flat: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """`mask` (True = a voxel of the image, False = padding) as (N, voxels) weights of `dtype`, or None."""
    return None if mask is None else mask.reshape(flat.shape).to(dtype)


def _voxel_count(weights: torch.Tensor | None, flat: torch.Tensor, mesh: SpatialMesh) -> int:
    """Voxels counted over the whole volume (all blocks): every one, or those `weights` keep.

    Every rank takes part in the all-reduce, with or without weights: a crop reaching into the padding
    gives weights to the ranks whose block it reaches and none to the others.
    """
    if weights is None:
        count = torch.full((1,), flat.numel(), dtype=torch.int64, device=flat.device)
    else:
        count = weights.sum().to(torch.int64).reshape(1)  # exact: a float32 sum of a 512^3 mask is not
    if mesh.spatial_size > 1:
        dist.all_reduce(count, group=mesh.spatial_group)
    return int(count.item())


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, mesh: SpatialMesh, *, lambda_dice: float = 1.0,
                 lambda_ce: float = 1.0, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)`` for a partitioned volume.

    Parameters
    ----------
    logits : Tensor, shape (N, C, d, h, w)
        This rank's block of the network output.
    labels : Tensor, shape (N, 1, d, h, w) or (N, d, h, w), integer values in [0, C)
        This rank's block of the labels.
    mask : Tensor of bool, shape of `labels`, optional
        The voxels that count (False: padding added to reach the block multiple); default all.

    Returns
    -------
    Tensor, scalar
        Mean over (sample, class) of the soft Dice loss plus the mean cross-entropy over the counted voxels
        of the whole volume - the same value on every rank of a replica.
    """
    n_batch, classes = logits.shape[:2]
    flat = _flat_labels(labels, logits)
    log_prob = F.log_softmax(logits, 1).reshape(n_batch, classes, -1)
    prob = log_prob.exp()
    at_label = flat.unsqueeze(1)
    weights = _weights(mask, flat, prob.dtype)
    prob_at_label = prob.gather(1, at_label)[:, 0]
    log_at_label = log_prob.gather(1, at_label)[:, 0]
    ones = torch.ones_like(flat, dtype=prob.dtype)
    if weights is not None:  # padding counts nowhere
        prob = prob * weights[:, None]
        prob_at_label = prob_at_label * weights
        log_at_label = log_at_label * weights
        ones = weights
    intersection = prob.new_zeros(n_batch, classes).scatter_add(1, flat, prob_at_label)
    ground = prob.new_zeros(n_batch, classes).scatter_add(1, flat, ones)
    predicted = prob.sum(2)
    ce_sum = -log_at_label.sum().reshape(1)
    sums = replicated_sum(
        torch.cat([intersection.reshape(-1), ground.reshape(-1), predicted.reshape(-1), ce_sum]), mesh)
    intersection, ground, predicted = sums[:-1].reshape(3, n_batch, classes)
    dice = 1.0 - (2.0 * intersection + smooth_nr) / (ground + predicted + smooth_dr)
    cross_entropy = sums[-1] / max(_voxel_count(weights, flat, mesh), 1)
    return lambda_dice * dice.mean() + lambda_ce * cross_entropy


def dice_scores(logits: torch.Tensor, labels: torch.Tensor, mesh: SpatialMesh,
                mask: torch.Tensor | None = None) -> list[float | None]:
    """Hard Dice of argmax(logits) per class over every sample and block of every replica, over the voxels
    `mask` keeps (default all).

    Returns one value per class, None for a class absent from both prediction and labels.
    """
    classes = logits.shape[1]
    flat = _flat_labels(labels, logits)
    with torch.no_grad():
        predicted = logits.argmax(1).reshape(flat.shape)
        weights = _weights(mask, flat, torch.float64)
        ones = torch.ones_like(flat, dtype=torch.float64) if weights is None else weights
        hit = torch.zeros(flat.shape[0], classes, dtype=torch.float64, device=flat.device)
        sums = torch.stack([
            hit.scatter_add(1, flat, (predicted == flat).double() * ones).sum(0),
            hit.scatter_add(1, predicted, ones).sum(0),
            hit.scatter_add(1, flat, ones).sum(0),
        ])
        if mesh.world_size > 1:
            dist.all_reduce(sums)
    both = (sums[1] + sums[2]).tolist()
    return [None if b == 0 else 2.0 * i / b for i, b in zip(sums[0].tolist(), both, strict=True)]
