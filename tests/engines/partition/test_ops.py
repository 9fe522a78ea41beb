"""Each partition-aware layer against the same torch layer on the whole volume (float64, gloo ranks).

A layer's output, input gradient and parameter gradients (summed over ranks) must equal the whole-volume
ones; the loss is sum(output * R) for a fixed random R, so gradients need no loss reduction.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engines.partition.conv import _autocast
from engines.partition.convert import partition_model
from engines.partition.grads import sum_gradients
from engines.partition.mesh import SpatialMesh

# name -> (factory, input channels, whole-volume spatial shape)
LAYERS = {
    "conv k3 s1": (lambda: nn.Conv3d(2, 3, 3, padding=1), 2, (8, 8, 8)),
    "conv k3 s2": (lambda: nn.Conv3d(2, 3, 3, stride=2, padding=1), 2, (8, 8, 8)),
    "conv k5 s1": (lambda: nn.Conv3d(2, 2, 5, padding=2), 2, (8, 8, 8)),
    "conv k3 dilation 2": (lambda: nn.Conv3d(2, 2, 3, padding=2, dilation=2), 2, (8, 8, 8)),
    "conv k3 groups 2 no bias": (lambda: nn.Conv3d(4, 4, 3, padding=1, groups=2, bias=False), 4, (8, 8, 8)),
    "conv k(3,1,5) padding 'same'": (lambda: nn.Conv3d(2, 2, (3, 1, 5), padding="same"), 2, (8, 8, 8)),
    "conv k1 s2": (lambda: nn.Conv3d(2, 2, 1, stride=2), 2, (8, 8, 8)),
    "transposed conv k2 s2": (lambda: nn.ConvTranspose3d(3, 2, 2, stride=2), 3, (4, 4, 4)),
    "transposed conv k3 s2 p1 op1": (
        lambda: nn.ConvTranspose3d(3, 2, 3, stride=2, padding=1, output_padding=1), 3, (4, 4, 4)),
    "max pool 2": (lambda: nn.MaxPool3d(2), 2, (8, 8, 8)),
    "avg pool 2": (lambda: nn.AvgPool3d(2), 2, (8, 8, 8)),
    "trilinear x2": (lambda: nn.Upsample(scale_factor=2, mode="trilinear"), 2, (4, 4, 4)),
    "trilinear x2 align_corners": (lambda: nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True),
                                   2, (4, 4, 4)),
    "trilinear x3": (lambda: nn.Upsample(scale_factor=3, mode="trilinear"), 2, (4, 4, 4)),
    "nearest x2": (lambda: nn.Upsample(scale_factor=2, mode="nearest"), 2, (4, 4, 4)),
    "instance norm": (lambda: nn.InstanceNorm3d(3, affine=True), 3, (8, 8, 8)),
    "instance norm no affine, running stats": (lambda: nn.InstanceNorm3d(3, track_running_stats=True),
                                               3, (8, 8, 8)),
    "group norm": (lambda: nn.GroupNorm(2, 4), 4, (8, 8, 8)),
    "batch norm": (lambda: nn.BatchNorm3d(3), 3, (8, 8, 8)),
    "batch norm cumulative": (lambda: nn.BatchNorm3d(3, momentum=None), 3, (8, 8, 8)),
}


def layer_worker(names, mesh_shape):
    """For each layer: the worst |partitioned - whole| over output, gradients and buffers."""
    mesh = SpatialMesh(mesh_shape)
    errors = {}
    for name in names:
        factory, channels, shape = LAYERS[name]
        torch.manual_seed(0)
        layer = factory().double()
        for p in layer.parameters():  # non-trivial affine parameters
            nn.init.normal_(p)
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(2, channels, *shape, dtype=torch.float64, generator=generator) * 3 + 1
        whole = layer.train()
        part = partition_model(whole, mesh)
        x_ref = x.clone().requires_grad_()
        y_ref = whole(x_ref)
        weights = torch.randn(y_ref.shape, dtype=torch.float64, generator=generator)
        (y_ref * weights).sum().backward()
        xb = mesh.block(x).clone().requires_grad_()
        y = part(xb)
        (y * mesh.block(weights)).sum().backward()
        sum_gradients(part, mesh)
        diffs = [(y - mesh.block(y_ref)).abs().max(), (xb.grad - mesh.block(x_ref.grad)).abs().max()]
        diffs += [(p.grad - q.grad).abs().max()
                  for p, q in zip(part.parameters(), whole.parameters(), strict=True)]
        diffs += [(b - c).abs().max().double() for b, c in zip(part.buffers(), whole.buffers(), strict=True)]
        err = torch.stack(diffs).max().detach()
        torch.distributed.all_reduce(err, op=torch.distributed.ReduceOp.MAX)
        errors[name] = float(err)
    return errors


@pytest.mark.dist
@pytest.mark.parametrize(("n", "mesh_shape"), [(2, (2, 1, 1)), (2, (1, 1, 2)), (4, (2, 2, 1))])
def test_partitioned_layers_equal_whole_volume_layers(ranks, n, mesh_shape):
    errors = ranks(n).run(layer_worker, list(LAYERS), mesh_shape, timeout_s=180)[0]
    assert {name: err for name, err in errors.items() if not err < 1e-10} == {}


def replica_running_stats_worker(mesh_shape, data_parallel):
    """Instance norm with running statistics, each replica on its own two samples of a batch of
    2 x replicas: the worst |partitioned - whole-batch| over the running buffers."""
    mesh = SpatialMesh(mesh_shape, data_parallel=data_parallel)
    layer = nn.InstanceNorm3d(3, track_running_stats=True).double()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2 * data_parallel, 3, 8, 8, 8, dtype=torch.float64, generator=generator) * 3 + 1
    part = partition_model(layer, mesh)
    layer.train()(x)  # the whole batch at once
    part.train()(mesh.block(x[2 * mesh.replica: 2 * mesh.replica + 2]))
    err = torch.stack([(b - c).abs().max() for b, c in zip(part.buffers(), layer.buffers(), strict=True)])
    return float(err.max())


@pytest.mark.dist
@pytest.mark.parametrize(("n", "mesh_shape", "data_parallel"), [(2, (1, 1, 1), 2), (4, (2, 1, 1), 2)])
def test_running_statistics_of_replicas_are_those_of_the_whole_batch(ranks, n, mesh_shape, data_parallel):
    errors = ranks(n).run(replica_running_stats_worker, mesh_shape, data_parallel, timeout_s=120)
    assert max(errors) < 1e-10


def test_halo_convolutions_take_autocasts_dtype_as_f_conv3d_would():
    """bfloat16 for float32 inputs under CPU autocast; float64 left alone, as autocast leaves it."""
    single, double = torch.ones(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert [t.dtype for t in _autocast(single, single, single)] == [torch.bfloat16] * 3
        assert [t.dtype for t in _autocast(double, double, double)] == [torch.float64] * 3
        assert torch.nn.functional.conv3d(double, double).dtype == torch.float64
    assert _autocast(single, single, None) == (single, single, None)


def half_precision_norm_worker() -> float:
    """A float16 instance norm whose per-channel sums pass float16's largest value (65504): activations
    around 30 and a loss-scaled gradient around 20 over 4096 voxels. Output and input gradient against the
    same in float32 (inf or NaN where summed in float16)."""
    from engines.partition.norm import global_norm

    torch.manual_seed(0)
    x = torch.randn(1, 4, 16, 16, 16) + 30
    upstream = torch.randn_like(x) + 20
    weight = torch.ones(4)
    results = []
    for dtype in (torch.float16, torch.float32):
        block = x.to(dtype).requires_grad_()
        y = global_norm(block, weight, None, groups=4, batch=False, eps=1e-5)[0]
        results.append((y.float(), torch.autograd.grad(y, block, upstream.to(dtype))[0].float()))
    return max(float((half - single).abs().max() / single.abs().max())
               for half, single in zip(*results, strict=True))


def test_a_half_precision_norm_keeps_its_sums_in_float32(ranks):
    assert ranks(1).run(half_precision_norm_worker, timeout_s=60)[0] < 0.01
