"""Halo sizes (pure, against brute-force enumeration) and the halo exchange between ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines.partition.halo import check_tiling, conv_halo, conv_transpose_halo, halo_pad, halo_reduce
from engines.partition.mesh import SpatialMesh

GEOMETRIES = [  # (kernel, stride, padding, dilation)
    (3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 1), (1, 1, 0, 1), (1, 2, 0, 1), (2, 2, 0, 1), (3, 1, 2, 2),
    (7, 1, 3, 1),
]
TRANSPOSED = [(2, 2, 0, 1), (3, 2, 1, 1), (4, 4, 0, 1), (1, 1, 0, 1)]


def _reads(kernel, stride, padding, dilation, outputs):
    """Inputs a conv's outputs read, enumerated from the definition."""
    return {stride * o - padding + j * dilation for o in outputs for j in range(kernel)}


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), GEOMETRIES)
def test_conv_halo_matches_enumeration(kernel, stride, padding, dilation):
    extent, start = 4 * stride, 8 * stride  # a block of inputs [start, start + extent)
    read = _reads(kernel, stride, padding, dilation, range(start // stride, (start + extent) // stride))
    left, right = conv_halo(kernel, stride, padding, dilation)
    assert min(read) == start - left
    assert max(read) <= start + extent - 1 + right
    assert right == 0 or max(read) == start + extent - 1 + right


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), TRANSPOSED)
def test_conv_transpose_halo_matches_enumeration(kernel, stride, padding, dilation):
    extent, start = 4, 8
    wanted = range(stride * start, stride * (start + extent))
    # input i writes outputs stride*i - padding + j*dilation; find the inputs that reach the wanted outputs.
    sources = {i for i in range(-10, 40) for j in range(kernel)
               if stride * i - padding + j * dilation in wanted}
    left, right = conv_transpose_halo(kernel, stride, padding, dilation)
    assert (min(sources), max(sources)) == (start - left, start + extent - 1 + right)


@pytest.mark.parametrize(("kernel", "stride", "padding", "transposed"), [
    (2, 1, 0, False), (4, 1, 1, False), (3, 1, 0, False), (3, 2, 0, True), (3, 2, 2, True), (4, 2, 0, True)])
def test_geometries_whose_blocks_do_not_tile_are_refused(kernel, stride, padding, transposed):
    with pytest.raises(ValueError, match="tile"):
        check_tiling(kernel, stride, padding, 1, transposed=transposed)


def _global_volume(shape):
    return torch.arange(float(np.prod(shape)), dtype=torch.float64).reshape(shape)


def halo_worker(mesh_shape, global_shape, halos):
    """halo_pad against slicing the zero-padded whole volume; halo_reduce is its adjoint."""
    mesh = SpatialMesh(mesh_shape)
    volume = _global_volume(global_shape)
    block = mesh.block(volume)
    padded, _ = halo_pad(block, mesh, halos)
    widths = [halos.get(axis, (0, 0)) if axis in mesh.split_axes else (0, 0) for axis in range(3)]
    whole = F.pad(volume, [w for axis in (2, 1, 0) for w in widths[axis]])
    slices = mesh.block_slices(global_shape[-3:])
    grown = (slice(s.start, s.stop + lo + hi) for s, (lo, hi) in zip(slices, widths, strict=True))
    expected = whole[(..., *grown)]
    pad_ok = padded.shape == expected.shape and torch.equal(padded, expected)
    # Adjoint: sum over ranks of <pad(x), y> == <x, reduce(y)>.
    y = torch.randn(padded.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(mesh.rank))
    lhs, rhs = torch.tensor([(padded * y).sum(), (block * halo_reduce(y, mesh, halos)).sum()])
    torch.distributed.all_reduce(lhs)
    torch.distributed.all_reduce(rhs)
    return pad_ok, float(lhs), float(rhs)


@pytest.mark.dist
@pytest.mark.parametrize(("n", "mesh_shape", "halos"), [
    (2, (2, 1, 1), {0: (1, 1)}),
    (2, (1, 1, 2), {2: (2, 1)}),
    (4, (2, 2, 1), {0: (1, 1), 1: (1, 1), 2: (1, 1)}),
    (4, (1, 2, 2), {1: (0, 1), 2: (2, 0)}),
])
def test_halo_pad_equals_padded_whole_volume_and_reduce_is_its_adjoint(ranks, n, mesh_shape, halos):
    results = ranks(n).run(halo_worker, mesh_shape, (1, 2, 8, 6, 4), halos, timeout_s=120)
    for pad_ok, lhs, rhs in results:
        assert pad_ok
        assert lhs == pytest.approx(rhs, rel=1e-12)

