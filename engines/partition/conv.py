"""Convolutions on blocks: exchange halos along split axes, convolve without padding there, crop.

Conv3d: odd kernel with padding kernel // 2 (stride 1 or 2), or kernel == stride with padding 0.
ConvTranspose3d: kernel == stride, or kernel 3 / stride 2 / padding 1 / output_padding 1 (MONAI UNet's
up-convolution), i.e. any geometry whose output is stride x the input (see `halo.check_tiling`).

The autograd Function keeps only the block and the thin halo slabs for backward, not the padded copy,
so a partitioned conv holds no more activation memory than the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engines.partition.halo import (
    check_tiling,
    conv_halo,
    conv_transpose_halo,
    halo_pad,
    halo_reduce,
    halo_repad,
)
from engines.partition.mesh import AXES, SpatialMesh
from engines.partition.module import PartitionedModule


@dataclass(frozen=True)
class ConvGeometry:
    """How one conv runs on a block: the halos, the native call's arguments, and the crop."""

    halos: dict[int, tuple[int, int]]  # split axis -> (left, right)
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]  # 0 on split axes, the layer's own elsewhere
    dilation: tuple[int, int, int]
    output_padding: tuple[int, int, int]
    transposed: bool
    groups: int
    crop_start: dict[int, int]  # split axis -> first output slice that belongs to this block

    @property
    def needs_halo(self) -> bool:
        return any(any(lr) for lr in self.halos.values())


def conv_geometry(layer: nn.Conv3d | nn.ConvTranspose3d, mesh: SpatialMesh) -> ConvGeometry:
    """Check that `layer` can run on blocks of `mesh` and work out how (ValueError if it cannot)."""
    transposed = isinstance(layer, nn.ConvTranspose3d)
    if layer.padding_mode != "zeros":
        raise ValueError(f"padding_mode={layer.padding_mode!r}: only zero padding can be partitioned")
    padding = _int_padding(layer)
    halos, crop, pad, out_pad = {}, {}, list(padding), list(layer.output_padding if transposed else (0, 0, 0))
    for axis in mesh.split_axes:
        k, s, p, d = layer.kernel_size[axis], layer.stride[axis], padding[axis], layer.dilation[axis]
        if transposed:
            check_tiling(k, s, p, d, transposed=True, output_padding=layer.output_padding[axis])
            halos[axis] = conv_transpose_halo(k, s, p, d)
            crop[axis] = s * halos[axis][0] + p
        else:
            halos[axis] = conv_halo(k, s, p, d)
            crop[axis] = 0
        pad[axis] = out_pad[axis] = 0
    return ConvGeometry(halos, tuple(layer.stride), tuple(pad), tuple(layer.dilation), tuple(out_pad),
                        transposed, layer.groups, crop)


class _HaloConv(PartitionedModule):
    """A convolution twin that knows its halo geometry on the mesh (worked out once, at conversion)."""

    geometry: ConvGeometry

    @classmethod
    def from_module(cls, module: nn.Module, mesh: SpatialMesh, path: str) -> nn.Module:
        twin = super().from_module(module, mesh, path)
        twin.geometry = conv_geometry(twin, mesh)
        return twin

    def check_halo(self, x: torch.Tensor) -> None:
        """Raise ValueError, naming this layer, when a halo is deeper than the block it comes from (it would
        need voxels from two blocks away)."""
        for axis in self.mesh.split_axes:
            depth, extent = max(self.geometry.halos.get(axis, (0, 0))), x.shape[x.ndim - 3 + axis]
            if depth > extent:
                raise ValueError(
                    f"{self.path} ({type(self).__name__}): its halo of {depth} slices along {AXES[axis]} is "
                    f"deeper than the block ({extent} slices there): use fewer blocks along {AXES[axis]} or "
                    "a larger volume")


class HaloConv3d(_HaloConv, nn.Conv3d):
    """nn.Conv3d on one block of a partitioned volume (same parameters, same state_dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_divisible(x, self.stride)
        if not self.geometry.needs_halo:
            return super().forward(x)
        self.check_halo(x)
        return HaloConvFunction.apply(*_autocast(x, self.weight, self.bias), self.mesh, self.geometry)


class HaloConvTranspose3d(_HaloConv, nn.ConvTranspose3d):
    """nn.ConvTranspose3d on one block of a partitioned volume (output block = stride x input block)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError(f"{self.path}: output_size is a global shape; a partitioned transposed conv "
                             f"makes stride x its block and takes none")
        if not self.geometry.needs_halo:
            return super().forward(x)
        self.check_halo(x)
        return HaloConvFunction.apply(*_autocast(x, self.weight, self.bias), self.mesh, self.geometry)


def _autocast(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The inputs as torch.autocast gives them to a convolution (its lower precision) when it is on:
    autocast casts F.conv3d's inputs, not the aten call of HaloConvFunction. The casts are differentiable,
    so fp32 weights get fp32 gradients, as in the plain layer."""
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(device)

    def cast(t: torch.Tensor) -> torch.Tensor:  # autocast's rule: floating point, but never float64
        return t.to(dtype) if t.is_floating_point() and t.dtype != torch.float64 else t

    return cast(x), cast(weight), None if bias is None else cast(bias)


class HaloConvFunction(torch.autograd.Function):
    """y = crop(conv(halo_pad(x))); backward rebuilds the padded block from saved slabs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # type: ignore[override]
                mesh: SpatialMesh, geometry: ConvGeometry) -> torch.Tensor:
        padded, slabs = halo_pad(x, mesh, geometry.halos)
        y = _convolution(padded, weight, bias, geometry)
        ctx.full_shape = y.shape
        cropped = _crop(y, x, geometry)
        y = y if cropped.shape == y.shape else cropped.clone(memory_format=torch.contiguous_format)
        ctx.mesh, ctx.geometry, ctx.has_bias = mesh, geometry, bias is not None
        ctx.slab_axes = [axis for axis, _, _ in slabs]
        ctx.save_for_backward(x, weight, *(t for _, lo, hi in slabs for t in (lo, hi)))
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight, *flat = ctx.saved_tensors
        g = ctx.geometry
        slabs = [(axis, flat[2 * i], flat[2 * i + 1]) for i, axis in enumerate(ctx.slab_axes)]
        padded = halo_repad(x, slabs)
        if grad.shape == ctx.full_shape:  # nothing was cropped (a convolution, not a transposed one)
            full = grad
        else:
            full = grad.new_zeros(ctx.full_shape)
            _crop(full, x, g).copy_(grad)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_padded, grad_w, grad_b = torch.ops.aten.convolution_backward(
            full, padded, weight, [weight.shape[1] * g.groups if g.transposed else weight.shape[0]]
            if ctx.has_bias else None, g.stride, g.padding, g.dilation, g.transposed, g.output_padding,
            g.groups, [need_x, need_w, need_b and ctx.has_bias])
        del padded, full  # not held through the halo exchange, where the step's memory peaks
        # grad_padded is this call's own: halo_reduce may add into it
        grad_x = halo_reduce(grad_padded, ctx.mesh, g.halos) if need_x else None
        return grad_x, grad_w, grad_b, None, None


def _convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry
                 ) -> torch.Tensor:
    return torch.ops.aten.convolution(x, weight, bias, g.stride, g.padding, g.dilation, g.transposed,
                                      g.output_padding, g.groups)


def _crop(y: torch.Tensor, x: torch.Tensor, g: ConvGeometry) -> torch.Tensor:
    """The slices of a padded conv's output that belong to this block (a view)."""
    for axis, start in g.crop_start.items():
        dim = x.ndim - 3 + axis
        extent = x.shape[dim] * g.stride[axis] if g.transposed else x.shape[dim] // g.stride[axis]
        if y.shape[dim] < start + extent:
            raise RuntimeError(f"halo conv made {y.shape[dim]} slices along axis {axis}, "
                               f"needs {start + extent}")
        y = y.narrow(dim, start, extent)
    return y


def _int_padding(layer: nn.Conv3d | nn.ConvTranspose3d) -> tuple[int, int, int]:
    if isinstance(layer.padding, str):
        if layer.padding == "valid":
            return (0, 0, 0)
        reach = [(k - 1) * d for k, d in zip(layer.kernel_size, layer.dilation, strict=True)]
        if any(r % 2 for r in reach):
            raise ValueError("padding='same' with an even kernel pads unevenly and cannot be partitioned")
        return tuple(r // 2 for r in reach)  # type: ignore[return-value]
    return tuple(int(p) for p in layer.padding)  # type: ignore[return-value]
