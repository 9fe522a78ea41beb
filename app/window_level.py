"""Window/level: the preset table, width/level <-> contrast limits, and right-button drag on the canvas.

Radiology states a display window as width W and level (centre) L; napari as contrast limits
(L - W/2, L + W/2). Everything here that touches a layer goes through `set_window_level`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import napari
import numpy as np
from napari.layers import Image

from engines.volume import Volume

# CT presets as (width, level) in HU, in the order the View dock shows them. The one table of them.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "subdural": (200.0, 75.0),
    "stroke": (40.0, 40.0),
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "abdomen": (400.0, 50.0),
    "liver": (150.0, 30.0),
    "bone": (1800.0, 400.0),
}
# Screen pixels of drag that change width/level by one reference width (see `drag_step`).
DRAG_PIXELS = 200.0


def to_contrast_limits(width: float, level: float) -> tuple[float, float]:
    """(width, level) -> napari contrast limits (level - width/2, level + width/2)."""
    if not width > 0:
        raise ValueError(f"window width must be > 0, got {width}")
    return float(level - width / 2), float(level + width / 2)


def from_contrast_limits(limits: tuple[float, float]) -> tuple[float, float]:
    """napari contrast limits (low, high) -> (width, level)."""
    low, high = (float(v) for v in limits)
    return high - low, (low + high) / 2


def dicom_window(volume: Volume | None) -> tuple[float, float] | None:
    """The file's own (width, level), from a Volume whose `window` is DICOM's (centre, width)."""
    if volume is None or volume.window is None:
        return None
    centre, width = volume.window
    return (float(width), float(centre)) if width > 0 else None


def strided_sample(data: Any, max_samples: int) -> np.ndarray:
    """Every s-th voxel along each axis of `data` (numpy, memmap, dask, ...), with s chosen so that at most
    about `max_samples` voxels are read."""
    shape = data.shape
    stride = max(1, int(np.ceil((np.prod(shape) / max_samples) ** (1 / len(shape)))))
    return np.asarray(data[(slice(None, None, stride),) * len(shape)])


def percentile_window(data, low: float = 1.0, high: float = 99.0, *, max_samples: int = 1_000_000
                      ) -> tuple[float, float]:
    """(width, level) spanning the `low`-`high` percentiles of `data`, from a strided subsample.

    Parameters
    ----------
    data : array-like, any shape (numpy, memmap, dask, ...)
        Only every s-th voxel along each axis is read, with s chosen so that at most about
        `max_samples` voxels are touched: a 512³ volume costs milliseconds, not a full pass.
    low, high : float
        Percentiles in [0, 100].
    """
    sample = np.asarray(strided_sample(data, max_samples), dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("no finite values to take percentiles of")
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:  # flat image: any positive width shows it
        hi = lo + 1.0
    return float(hi - lo), float((hi + lo) / 2)


def target_image_layer(viewer: napari.Viewer) -> Image | None:
    """The image whose window is set: the selected layer if it is an image, else the top visible image."""
    active = viewer.layers.selection.active
    if isinstance(active, Image):
        return active
    for layer in reversed(viewer.layers):
        if isinstance(layer, Image) and layer.visible:
            return layer
    return None


def set_window_level(layer: Image, width: float, level: float) -> None:
    """Show `layer` with window `width` centred on `level` (napari widens its contrast range as needed)."""
    layer.contrast_limits = to_contrast_limits(width, level)


def drag_step(layer: Image) -> float:
    """Width/level change per pixel of drag: proportional to the current width, with a floor of 1/100
    of the data range so a very narrow window can still be widened quickly."""
    width, _ = from_contrast_limits(layer.contrast_limits)
    data_low, data_high = layer.contrast_limits_range
    return max(width, (data_high - data_low) / 100, 1e-6) / DRAG_PIXELS


def window_level_drag(viewer: napari.Viewer, event) -> Generator[None, None, None]:
    """Mouse-drag callback: right-button drag sets window/level of `target_image_layer`.

    Drag right widens the window (less contrast), left narrows it; drag up lowers the level (brighter),
    down raises it (darker). Active only where napari itself would pan/zoom (no layer, or the selected
    layer in pan_zoom mode), so painting or drawing tools keep their right button. The camera's own
    right-drag zoom is switched off for the drag and restored on release.
    """
    if event.button != 2 or event.type != "mouse_press":
        return
    active = viewer.layers.selection.active
    if active is not None and active.mode != "pan_zoom":
        return
    layer = target_image_layer(viewer)
    if layer is None:
        return
    width0, level0 = from_contrast_limits(layer.contrast_limits)
    step = drag_step(layer)
    x0, y0 = event.pos[:2]
    camera = viewer.scene.camera
    mouse_pan = camera.mouse_pan
    camera.mouse_pan = False
    event.handled = True
    try:
        yield
        while event.type == "mouse_move":
            x, y = event.pos[:2]
            width = max(width0 + (x - x0) * step, step)
            set_window_level(layer, width, level0 + (y - y0) * step)
            event.handled = True
            yield
    finally:
        camera.mouse_pan = mouse_pan


def install_window_level_drag(viewer: napari.Viewer) -> None:
    """Add `window_level_drag` to the viewer's mouse-drag callbacks (once)."""
    if window_level_drag not in viewer.mouse_drag_callbacks:
        viewer.mouse_drag_callbacks.append(window_level_drag)
