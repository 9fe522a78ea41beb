"""Status-bar readout under the cursor: voxel index, world mm (RAS) and value (HU for CT).

The index is in the file's own voxel order (what other tools show), found through the layer's Volume
affine, not through napari's reordered layer data. One voxel is read per update: cheap even for a
memory-mapped 512^3 volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import napari
import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import QLabel

from app.layers import layer_volume
from engines.volume import Volume


def world_to_voxel(volume: Volume, world: Sequence[float]) -> tuple[int, ...] | None:
    """Nearest voxel index (file order) of the RAS mm point `world` (3,), or None outside the grid."""
    ijk = np.linalg.solve(volume.affine, np.array([*world[-3:], 1.0]))[:3]
    index = tuple(int(i) for i in np.rint(ijk))
    if all(0 <= i < n for i, n in zip(index, volume.shape, strict=True)):
        return index
    return None


def _format_value(value: object, modality: str | None) -> str:
    number = np.asarray(value).item()
    text = f"{number:d}" if isinstance(number, int) else f"{number:.4g}"
    return f"{text} HU" if modality == "CT" else text


def readout(viewer: napari.components.ViewerModel, position: Sequence[float] | None = None) -> str:
    """The readout text at world `position` (default: the cursor, with the sliders' values off-screen).

    Uses the topmost visible image layer made from a Volume whose grid contains the point; world
    coordinates alone when none does; nothing when no Volume is shown (a hyperspectral cube's pixels are
    not millimetres, and napari's own status gives their value).
    """
    if position is None:
        position = list(viewer.cursor.position)
        for axis in viewer.dims.not_displayed:
            position[axis] = viewer.dims.point[axis]
    if len(position) < 3 or not any(layer.visible and layer_volume(layer) is not None
                                     for layer in viewer.layers):
        return ""
    world = np.asarray(position[-3:], dtype=float)
    text = "RAS ({:.1f}, {:.1f}, {:.1f}) mm".format(*world)
    for layer in reversed(viewer.layers):
        volume = layer_volume(layer)
        if not (isinstance(layer, Image) and layer.visible and volume is not None):
            continue
        index = world_to_voxel(volume, world)
        if index is None:
            continue
        value = _format_value(volume.data[index], volume.modality)
        return f"{layer.name}   voxel ({', '.join(map(str, index))})   {text}   value {value}"
    return text


class CursorReadout(QLabel):
    """A permanent status-bar label showing `readout` for the cursor, updated as it moves."""

    def __init__(self, viewer: napari.Viewer) -> None:
        super().__init__()
        self.setObjectName("tessera_cursor_readout")
        self._viewer = viewer
        viewer.cursor.events.position.connect(self._update)
        viewer.dims.events.point.connect(self._update)
        viewer.window._qt_window.statusBar().addPermanentWidget(self)

    def _update(self, event: object = None) -> None:
        self.setText(readout(self._viewer))
