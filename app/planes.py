"""Radiological views of a RAS world: which world axis is sliced and which way the screen axes point.

napari's world here is RAS millimetres with axes (0, 1, 2) = (R, A, S): image layers carry the Volume's
affine, so every layer is placed in physical space. A plane is a `dims.order` (the last two entries are
shown: vertical, horizontal) plus a camera orientation. The horizontal axis always points 'left' so the
patient's right is on the screen's left (radiological convention), the vertical one 'up' (anterior or
superior at the top).
"""

from __future__ import annotations

from collections.abc import Sequence

import napari
import numpy as np
from napari.layers import Layer

# plane -> (dims.order, world axes shown as (vertical, horizontal))
PLANES: dict[str, tuple[tuple[int, int, int], tuple[int, int]]] = {
    "axial": ((2, 1, 0), (1, 0)),  # slice along S; A up, R to the left
    "coronal": ((1, 2, 0), (2, 0)),  # slice along A; S up, R to the left
    "sagittal": ((0, 2, 1), (2, 1)),  # slice along R; S up, A to the left
}
# Letters at the (top, bottom, left, right) screen edges for each plane.
EDGE_LETTERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}


def set_plane(viewer: napari.Viewer, plane: str, *, fit: Sequence[Layer] | None = None) -> None:
    """Show `plane` ("axial", "coronal", "sagittal" or "3d") of a 3D RAS world, fitted to the layers `fit`
    (default: all of them)."""
    if plane == "3d":
        viewer.dims.ndisplay = 3
        return
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; expected one of {[*PLANES, '3d']}")
    order, _ = PLANES[plane]
    viewer.dims.ndisplay = 2
    if viewer.dims.ndim == 3:
        viewer.dims.order = order
    viewer.scene.camera.orientation = ("towards", "up", "left")
    fit_to(viewer, fit)


def fit_to(viewer: napari.components.ViewerModel, layers: Sequence[Layer] | None) -> None:
    """napari's reset_view fitted to `layers`, 2D ones in the 3D world included, leaving out those with no
    extent (an empty shapes layer). napari's own fit of every layer when none is left or none spans the
    world (reset_view(layers=) fails then)."""
    layers = [layer for layer in layers or () if np.isfinite(layer.extent.world).all()]
    viewer.reset_view(layers=layers if any(layer.ndim == viewer.dims.ndim for layer in layers) else None)


def current_plane(viewer: napari.Viewer) -> str:
    """The plane shown now: "3d", one of PLANES, or "other" after a free dims change."""
    if viewer.dims.ndisplay == 3:
        return "3d"
    order = tuple(viewer.dims.order)
    for name, (plane_order, _) in PLANES.items():
        if order == plane_order:
            return name
    return "other"
