"""Padding a volume so a mesh and a network's downsampling both divide it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def padded_shape(shape: Sequence[int], multiple: int | Sequence[int]) -> tuple[int, int, int]:
    """The last three extents of `shape` rounded up to a multiple (one int, or one per axis)."""
    multiple = (multiple,) * 3 if isinstance(multiple, int | np.integer) else tuple(multiple)
    if len(multiple) != 3 or min(multiple) < 1:
        raise ValueError(f"multiple must be a positive int or three of them; got {multiple}")
    return tuple(-(-int(n) // int(m)) * int(m) for n, m in zip(shape[-3:], multiple, strict=True))  # type: ignore[return-value]


def pad_to_multiple(volume: np.ndarray, multiple: int | Sequence[int], *, value: float = 0) -> np.ndarray:
    """Pad the last three axes at their far end with `value` up to a multiple of `multiple`.

    Padding at the end keeps voxel (0, 0, 0) where it was, so the affine still holds and
    ``result[..., :D, :H, :W]`` is the original. Returns `volume` itself when nothing is needed.

    Parameters
    ----------
    volume : ndarray, shape (..., D, H, W)
    multiple : int or (int, int, int)
        E.g. mesh blocks x the network's downsampling along each axis.
    """
    target = padded_shape(volume.shape, multiple)
    widths = [(0, 0)] * (volume.ndim - 3)
    widths += [(0, t - n) for t, n in zip(target, volume.shape[-3:], strict=True)]
    if not any(w for _, w in widths):
        return volume
    return np.pad(volume, widths, mode="constant", constant_values=value)
