"""The Cube: a hyperspectral image with its bands and optional ground truth (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Cube:
    """A hyperspectral cube.

    Attributes
    ----------
    data : array-like, shape (H, W, B)
        Band values; memory-mapped where the format allows.
    wavelengths_nm : ndarray, shape (B,), or None
        Band centres in nanometres, in the file's band order (increasing in most files; see
        `engines.io.cubes.check_wavelengths`).
    bad_bands : ndarray of bool, shape (B,), or None
        True where a band is flagged bad (ENVI ``bbl`` = 0).
    labels : ndarray of int, shape (H, W), or None
        Ground truth; 0 = unlabelled, classes 1..C.
    class_names : list of str
        Name of class c at index c - 1.
    meta : dict
        Format-specific extras (interleave, scale factor, split files found, ...).
    source : str
        The path as the user gave it.
    """

    data: Any
    wavelengths_nm: np.ndarray | None = None
    bad_bands: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        h, w, b = (int(n) for n in self.data.shape)
        return h, w, b
