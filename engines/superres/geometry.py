"""Sampling geometry of arbitrary-scale upsampling: scales, output sizes, source pixels, affines.

Convention (one source of truth for the network, the interpolation baselines and the written affine):
pixels are cells and both grids cover the same field of view, so output pixel i has its centre at input
coordinate u_i = (i + 0.5) / s - 0.5 (input pixel units). Its *source pixel* is the nearest input pixel,
round(u_i), and its sub-pixel *offset* u_i - round(u_i) lies in [-0.5, 0.5]. The first output voxel centre
therefore sits (1/s - 1)/2 input voxels from the first input voxel centre. An axis gets round(n * s)
output pixels, so when n * s is not whole the grids' far edges differ by less than half an output pixel.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from engines.errors import InputError

SCALE_MIN = 1.0
SCALE_MAX = 4.0
# Offsets are rounded to this step so that a periodic pattern yields exactly repeated values.
_OFFSET_QUANTUM = 2.0**-16


def check_scales(sx: float, sy: float) -> tuple[float, float]:
    """Validate per-axis scales: each in [1, 4], at least one above 1; return them as floats.

    A scale of exactly 1 is allowed on one axis (e.g. upsampling a through-plane slice along its
    thick-slice axis only); both equal to 1 would be a no-op and is refused.
    """
    out = []
    for name, s in (("scale x", sx), ("scale y", sy)):
        try:
            value = float(s)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number in (1, 4], got {s!r}") from None
        if not math.isfinite(value) or not SCALE_MIN <= value <= SCALE_MAX:
            raise InputError(
                f"{name} must be in (1, 4] (one axis may be exactly 1 when the other is above 1), got {s!r}"
            )
        out.append(value)
    if out[0] == 1.0 and out[1] == 1.0:
        raise InputError("at least one scale must be above 1 (scales must be in (1, 4]), got 1 and 1")
    return out[0], out[1]


def output_size(n: int, scale: float) -> int:
    """Output pixels along an axis of `n` input pixels: round(n * scale), halves rounded up."""
    return math.floor(n * scale + 0.5)


def exact_fraction(scale: float) -> Fraction:
    """`scale` as a small fraction p/q (denominator <= 1000): 2.5 -> 5/2, 3.7 -> 37/10."""
    return Fraction(scale).limit_denominator(1000)


def exact_lr_size(target: int, scale: float) -> int:
    """The input size nearest `target` for which input * scale is a whole number of output pixels.

    Training pairs and benchmark crops use it so that high- and low-resolution grids align exactly.
    """
    q = exact_fraction(scale).denominator
    return max(q, q * round(target / q))


def source_positions(n_in: int, scale: float, n_out: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Source pixel and sub-pixel offset of each output pixel along one axis.

    Parameters
    ----------
    n_in : int
        Input pixels along the axis.
    scale : float
        Upsampling factor (>= 1).
    n_out : int, optional
        Output pixels; default `output_size(n_in, scale)`.

    Returns
    -------
    source : LongTensor, shape (n_out,)
        Nearest input pixel of each output pixel centre, in [0, n_in).
    offset : FloatTensor, shape (n_out,)
        Output centre minus source centre, in input pixels, in [-0.5, 0.5] (rounded to 2**-16).
    """
    n_out = output_size(n_in, scale) if n_out is None else n_out
    u = (torch.arange(n_out, dtype=torch.float64) + 0.5) / scale - 0.5
    source = torch.floor(u + 0.5).clamp_(0, n_in - 1)
    offset = torch.round((u - source) / _OFFSET_QUANTUM) * _OFFSET_QUANTUM
    return source.long(), offset.float()


def upsampled_affine(affine: np.ndarray, scales: tuple[float, float, float]) -> np.ndarray:
    """The affine of a volume upsampled by `scales` along its three voxel axes (same field of view).

    Each voxel axis' column shrinks by its scale and the origin moves to the first output voxel centre,
    (1/s - 1)/2 input voxels along that axis.
    """
    affine = np.asarray(affine, dtype=np.float64)
    out = affine.copy()
    for axis, s in enumerate(scales):
        out[:3, axis] = affine[:3, axis] / s
        out[:3, 3] += affine[:3, axis] * (1.0 / s - 1.0) / 2.0
    return out
