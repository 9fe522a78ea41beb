"""The voxels a measurement of a layer counts: its file's own, not the display grid an oblique volume is shown
resampled on.

A layer of an oblique volume shows it sampled onto an axis-aligned grid (`app.layers.display_grid`): each
display voxel takes the value of the file voxel containing it, so a file voxel is shown 0, 1 or several times.
Counting display voxels would then misstate volumes (a single 2.88 mm³ voxel counts as 2.37 mm³) and mesh a
staircase along the world axes instead of the file's voxels. Statistics and surfaces therefore use the
file's voxels and affine, as long as the layer still shows exactly what it was made with (the digest taken
then: not painted since); a layer that was edited keeps its own grid, which holds the edits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.layers import GRID_TOLERANCE_MM, data_digest, display_grid
from engines.volume import Volume


def file_grid(data: Any, affine: np.ndarray, volume: Volume | None, digest: str | None, *, labels: bool
              ) -> tuple[Any, np.ndarray, bool]:
    """(voxels, affine, whether they are the file's own) to measure a layer showing `data` at `affine`.

    `volume` is the layer's Volume (`app.layers.layer_volume`), `digest` the layer's
    ``metadata[SHOWN_DIGEST_KEY]`` (set on a resampled layer when it was made), `labels` whether it is a
    labels layer (whose float values napari shows rounded). Reads the layer's data once (its digest): call
    it in a worker thread.
    """
    if volume is None or digest is None:
        return data, affine, False
    shape, shown_affine, resampled = display_grid(volume)
    if not resampled or tuple(shape) != tuple(data.shape) or not np.allclose(
            shown_affine, affine, atol=GRID_TOLERANCE_MM):
        return data, affine, False  # shown as stored (only reordered), or not this volume's display grid
    if data_digest(data) != digest:
        return data, affine, False  # painted since it was made
    own = volume.data
    if labels and not np.issubdtype(np.dtype(own.dtype), np.integer):
        own = np.rint(np.asarray(own)).astype(np.int32)  # as app.layers.labels_layer shows them
    return own, np.asarray(volume.affine, dtype=np.float64), True
