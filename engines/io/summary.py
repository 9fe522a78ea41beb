"""Plain-data summaries of a Volume or Cube (the `info` command's fields; also fit for a GUI panel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.cube import Cube
from engines.volume import Volume

_CHUNK_BYTES = 64 << 20


def value_range(data: Any, *, chunk_bytes: int = _CHUNK_BYTES) -> tuple[Any, Any]:
    """Minimum and maximum of `data` (array-like, ..., K) over finite values; (None, None) if there are none.

    Reads about `chunk_bytes` at a time along the last axis, so a memory-mapped or lazy 512^3 volume is
    never loaded whole.
    """
    shape = tuple(int(n) for n in data.shape)
    if not shape or 0 in shape:
        return None, None
    per_slice = int(np.prod(shape[:-1])) * np.dtype(data.dtype).itemsize
    step = max(1, chunk_bytes // max(per_slice, 1))
    low = high = None
    for start in range(0, shape[-1], step):
        block = np.asarray(data[..., start : start + step])
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]
            if block.size == 0:
                continue
        block_low, block_high = block.min(), block.max()
        low = block_low if low is None else min(low, block_low)
        high = block_high if high is None else max(high, block_high)
    return (None if low is None else low.item()), (None if high is None else high.item())


def native_dtype_name(dtype: Any) -> str:
    """The dtype's name without byte order ('int16' for '>i2')."""
    return np.dtype(dtype).newbyteorder("=").name


def describe_volume(volume: Volume) -> dict[str, Any]:
    """The `info --json` document of a volume: exactly kind, shape, dtype, spacing_mm, orientation,
    affine, modality, min, max, warnings. `affine` maps indices along `shape`'s axes to RAS+ mm; min/max
    are in the volume's values (HU for CT)."""
    low, high = value_range(volume.data)
    return {
        "kind": "volume",
        "shape": list(volume.shape),
        "dtype": native_dtype_name(volume.data.dtype),
        "spacing_mm": [round(float(s), 6) for s in volume.spacing],
        "orientation": volume.orientation,
        "affine": [[round(float(v), 6) for v in row] for row in volume.affine],
        "modality": volume.modality,
        "min": low,
        "max": high,
        "warnings": list(volume.warnings),
    }


def describe_cube(cube: Cube) -> dict[str, Any]:
    """The `info --json` document of a cube: kind, shape, dtype, bands, wavelength_range_nm, classes,
    warnings."""
    wavelengths = cube.wavelengths_nm
    return {
        "kind": "cube",
        "shape": list(cube.shape),
        "dtype": native_dtype_name(cube.data.dtype),
        "bands": cube.shape[2],
        "wavelength_range_nm": None if wavelengths is None or len(wavelengths) == 0
        else [float(np.min(wavelengths)), float(np.max(wavelengths))],
        "classes": list(cube.class_names),
        "warnings": list(cube.warnings),
    }
