"""Halos: how many neighbouring slices an op needs (pure functions) and their exchange between ranks.

`halo_pad` extends each rank's block with `left` slices from the previous block and `right` slices from
the next one along every split axis in turn, so a later axis carries the earlier axes' halos and corners
come out right; outside the volume the halo is zeros. `halo_reduce` is its adjoint: the gradient that fell
on halo slices is sent back to the rank that owns those voxels and added there, axes in reverse order.
`HaloExchange` wraps the pair as one autograd Function.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist

from engines.partition.mesh import AXES, SpatialMesh

# axis (0 = D, 1 = H, 2 = W) -> (left, right): slices wanted from the previous and the next block.
Halos = Mapping[int, tuple[int, int]]


def conv_halo(kernel: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) halo of a convolution along one split axis, for blocks whose extent is a multiple of
    `stride` and whose outputs tile the global output (output extent = input extent / stride).

    Output o reads inputs ``stride*o - padding + j*dilation`` for ``j < kernel``. A block of inputs
    [a, a + L) makes outputs [a / stride, (a + L) / stride), which read inputs from ``a - padding`` to
    ``a + L - stride - padding + (kernel - 1) * dilation``.

    >>> conv_halo(3, 1, 1), conv_halo(3, 2, 1), conv_halo(2, 2, 0), conv_halo(5, 1, 2)
    ((1, 1), (1, 0), (0, 0), (2, 2))
    """
    check_tiling(kernel, stride, padding, dilation, transposed=False)
    reach = (kernel - 1) * dilation + 1
    return padding, max(0, reach - padding - stride)


def conv_transpose_halo(kernel: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) halo of a transposed convolution along one split axis (output extent = stride x
    input extent).

    Input i adds to outputs ``stride*i - padding + j*dilation``. Outputs [stride*a, stride*(a + L)) of a
    block of inputs [a, a + L) receive from inputs ``a - floor((reach - 1 - padding) / stride)`` up to
    ``a + L - 1 + floor((padding - 1) / stride) + 1``, with reach = (kernel - 1) * dilation + 1.

    >>> conv_transpose_halo(2, 2, 0), conv_transpose_halo(3, 2, 1)
    ((0, 0), (0, 1))
    """
    check_tiling(kernel, stride, padding, dilation, transposed=True)
    reach = (kernel - 1) * dilation + 1
    return max(0, (reach - 1 - padding) // stride), max(0, (padding - 1) // stride + 1)


def check_tiling(kernel: int, stride: int, padding: int, dilation: int, *, transposed: bool,
                 output_padding: int | None = None) -> None:
    """Raise ValueError unless blocks of a multiple of `stride` map to blocks that tile the output.

    A convolution must give ``extent / stride`` outputs (``stride - reach <= 2*padding - reach + stride
    <= stride - 1``, e.g. odd kernel with padding kernel // 2); a transposed convolution ``stride * extent``
    (``reach - 2*padding + output_padding == stride``).
    """
    reach = (kernel - 1) * dilation + 1
    if transposed:
        op = stride + 2 * padding - reach if output_padding is None else output_padding
        if reach - 2 * padding + op != stride or not 0 <= op < max(stride, dilation):
            raise ValueError(f"a transposed convolution with kernel {kernel}, stride {stride}, padding "
                             f"{padding}, output_padding {op} does not make stride x the input extent, so "
                             f"blocks would not tile the output (use kernel == stride, or kernel 3, stride "
                             f"2, padding 1, output_padding 1)")
    elif not reach - stride <= 2 * padding <= reach - 1:
        raise ValueError(f"a convolution with kernel {kernel}, stride {stride}, padding {padding} does not "
                         f"make input extent / stride outputs, so blocks would not tile the output (use an "
                         f"odd kernel with padding kernel // 2, or kernel == stride with padding 0)")


def halo_pad(x: torch.Tensor, mesh: SpatialMesh, halos: Halos
             ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor, torch.Tensor]]]:
    """Extend a block with its neighbours' slices along each split axis, zeros outside the volume.

    Parameters
    ----------
    x : Tensor, shape (N, C, d, h, w)
        This rank's block.
    halos : {axis: (left, right)}
        Axes not listed, or not split by the mesh, are left alone.

    Returns
    -------
    padded : Tensor, shape (N, C, d + left_D + right_D, ...)
    slabs : list of (axis, left slab, right slab)
        What was attached, in order, so a backward pass can rebuild `padded` without another exchange.
    """
    slabs = []
    for axis, (left, right) in _active(mesh, halos):
        dim = x.ndim - 3 + axis
        _check_extent(x, dim, axis, left, right)
        prev, nxt = mesh.neighbors(axis)
        # prev needs my first `right` slices for its right halo; next needs my last `left` for its left.
        sends = {prev: x.narrow(dim, 0, right), nxt: x.narrow(dim, x.shape[dim] - left, left)}
        lo = _slab(x, dim, left)
        hi = _slab(x, dim, right)
        _exchange(sends, {prev: lo, nxt: hi})
        x = torch.cat([lo, x, hi], dim)
        slabs.append((axis, lo, hi))
    return x, slabs


def halo_repad(x: torch.Tensor, slabs: list[tuple[int, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Rebuild what `halo_pad` returned from the block and the slabs it attached (no communication)."""
    for axis, lo, hi in slabs:
        x = torch.cat([lo, x, hi], x.ndim - 3 + axis)
    return x


def halo_reduce(grad: torch.Tensor, mesh: SpatialMesh, halos: Halos) -> torch.Tensor:
    """Adjoint of `halo_pad`: return each halo's gradient to the rank owning those voxels, which adds it.

    The received gradients are added into `grad` in place (the caller hands it over: pass a copy of a
    tensor still needed), and the block is copied out once at the end, so that no more than `grad` and
    the block are held at once.

    Parameters
    ----------
    grad : Tensor, shape of `halo_pad`'s output
        Gradient with respect to the padded block.

    Returns
    -------
    Tensor, shape of the unpadded block, contiguous.
    """
    for axis, (left, right) in reversed(_active(mesh, halos)):
        dim = grad.ndim - 3 + axis
        extent = grad.shape[dim] - left - right
        prev, nxt = mesh.neighbors(axis)
        inner = grad.narrow(dim, left, extent)
        sends = {prev: grad.narrow(dim, 0, left), nxt: grad.narrow(dim, left + extent, right)}
        # prev sends back what fell on its right halo (my first slices); next what fell on its left halo.
        from_prev = _slab(inner, dim, right)
        from_next = _slab(inner, dim, left)
        _exchange(sends, {prev: from_prev, nxt: from_next})
        if prev is not None and right:
            inner.narrow(dim, 0, right).add_(from_prev)
        if nxt is not None and left:
            inner.narrow(dim, extent - left, left).add_(from_next)
        grad = inner
    return grad.contiguous()


class HaloExchange(torch.autograd.Function):
    """Autograd Function: forward `halo_pad`, backward `halo_reduce`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mesh: SpatialMesh, halos: Halos) -> torch.Tensor:  # type: ignore[override]
        ctx.mesh, ctx.halos = mesh, halos
        return halo_pad(x, mesh, halos)[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        # the incoming gradient may be shared (an add passes one tensor to both inputs): reduce a copy
        return halo_reduce(grad.clone(memory_format=torch.contiguous_format), ctx.mesh, ctx.halos), None, None


def halo_exchange(x: torch.Tensor, mesh: SpatialMesh, halos: Halos) -> torch.Tensor:
    """Differentiable halo padding of a block: shape (N, C, d, h, w) -> (N, C, d + lD + rD, ...)."""
    if not _active(mesh, halos):
        return x
    return HaloExchange.apply(x, mesh, dict(halos))


def _active(mesh: SpatialMesh, halos: Halos) -> list[tuple[int, tuple[int, int]]]:
    return [(axis, lr) for axis, lr in sorted(halos.items()) if axis in mesh.split_axes and any(lr)]


def _check_extent(x: torch.Tensor, dim: int, axis: int, left: int, right: int) -> None:
    # A halo deeper than the block would need slices from two blocks away.
    if max(left, right) > x.shape[dim]:
        raise ValueError(f"a halo of {max(left, right)} slices along {AXES[axis]} is deeper than the block "
                         f"({x.shape[dim]} slices): use fewer blocks along {AXES[axis]} or a larger volume")


def _slab(x: torch.Tensor, dim: int, depth: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = depth
    return x.new_zeros(shape)


def _exchange(sends: dict[int | None, torch.Tensor], recvs: dict[int | None, torch.Tensor]) -> None:
    """Post every send and receive with a neighbour at once (None = no neighbour), then wait."""
    ops = [dist.P2POp(dist.isend, t.contiguous(), peer) for peer, t in sends.items()
           if peer is not None and t.numel()]
    ops += [dist.P2POp(dist.irecv, t, peer) for peer, t in recvs.items() if peer is not None and t.numel()]
    if ops:
        for work in dist.batch_isend_irecv(ops):
            work.wait()
