"""Helpers for label maps (class maps, segmentations) shared by the engines."""

from __future__ import annotations

import numpy as np


def map_dtype(values: np.ndarray) -> np.dtype:
    """The smallest unsigned type a label map holding these values needs: uint8 for most, wider for ids past
    255 (FreeSurfer's, a WHU-Hi class past 255), which uint8 would wrap."""
    return np.promote_types(np.uint8, np.min_scalar_type(int(np.max(values, initial=0))))


def to_values(indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Class indices 0..C-1 as the label values they stand for (`values`, sorted, C of them), in map_dtype;
    `indices` themselves when the values are 0..C-1."""
    values = np.asarray(values)
    if np.array_equal(values, np.arange(len(values))):
        return indices
    return values.astype(map_dtype(values))[indices]
