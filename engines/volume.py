"""The Volume: a 3D image with its physical geometry (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

PLANAR = "planar"  # meta key, True when the file held one 2D image (read as I x J x 1, written back as 2D)


@dataclass
class Volume:
    """A 3D image in physical space.

    Attributes
    ----------
    data : array-like, shape (I, J, K)
        Voxel values in the file's voxel order; lazy or memory-mapped where the format allows.
        CT values are Hounsfield units.
    affine : ndarray, shape (4, 4)
        Voxel index (i, j, k, 1) -> world millimetres, RAS+ (as nibabel).
    modality : str or None
        "CT", "MR", ... when the file says so.
    window : (centre, width) or None
        The DICOM window when the file carries one.
    meta : dict
        Format-specific extras (series UID, description, ...).
    source : str
        The path as the user gave it.
    warnings : list of str
        Problems found while reading that did not stop it (e.g. a gap between slices).
    """

    data: Any
    affine: np.ndarray
    modality: str | None = None
    window: tuple[float, float] | None = None
    meta: dict = field(default_factory=dict)
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Millimetres per voxel along each voxel axis (the column norms of the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def orientation(self) -> str:
        """Axis codes such as "RAS" or "LPS": where each voxel axis points in world space."""
        return "".join(nib.orientations.aff2axcodes(self.affine))
