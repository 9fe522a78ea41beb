"""What the Hyperspectral dock shows, computed without Qt: bands by wavelength, RGB composites, spectra."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.cube import Cube

DEFAULT_RGB_NM = (640.0, 550.0, 460.0)


def nearest_band(cube: Cube, wavelength_nm: float) -> int:
    """Index of the band whose centre is nearest `wavelength_nm` (band index itself without wavelengths)."""
    if cube.wavelengths_nm is None:
        return int(np.clip(round(wavelength_nm), 0, cube.shape[2] - 1))
    return int(np.argmin(np.abs(np.asarray(cube.wavelengths_nm) - wavelength_nm)))


def band_label(cube: Cube, band: int) -> str:
    """ "band 123 · 672.4 nm" (or just "band 123" without wavelengths); bands count from 1 for people."""
    text = f"band {band + 1}/{cube.shape[2]}"
    if cube.wavelengths_nm is not None:
        text += f" · {float(cube.wavelengths_nm[band]):.1f} nm"
    if cube.bad_bands is not None and cube.bad_bands[band]:
        text += " (bad band)"
    return text


def scale(cube: Cube) -> float:
    """Factor from stored values to reflectance (1 / the reflectance scale factor, or 1)."""
    return 1.0 / float(cube.meta.get("reflectance_scale_factor", 1.0) or 1.0)


def without_ignored(cube: Cube, values: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """`values` read from the cube as a new float array of `dtype`, with the cube's "data ignore value"
    (ENVI's no-data marker, e.g. -9999 outside the flight line) as NaN, so that no statistic counts it."""
    raw = np.asarray(values)
    out = np.array(raw, dtype=dtype)
    ignore = cube.meta.get("data_ignore_value")
    if ignore is not None:  # compared as stored: float32(-9999.9) is not float64's -9999.9
        out[raw == (raw.dtype.type(ignore) if raw.dtype.kind == "f" else ignore)] = np.nan
    return out


def band_image(cube: Cube, band: int) -> np.ndarray:
    """Band `band` (H, W) as float32, no-data pixels NaN."""
    return without_ignored(cube, cube.data[..., band], np.float32)


def stretch(image: np.ndarray, percent: float = 2.0) -> np.ndarray:
    """Linear stretch of each channel from its `percent` to its 100 - `percent` percentile onto 0..1, NaN
    (no data) left out of the percentiles and shown as 0.

    image : (H, W) or (H, W, C); returns float32 of the same shape.
    """
    img = np.asarray(image, dtype=np.float32)
    chans = img[..., None] if img.ndim == 2 else img
    valid = np.isfinite(chans).any(axis=(0, 1))
    lo = np.zeros(chans.shape[-1], np.float32)
    hi = np.ones(chans.shape[-1], np.float32)
    if valid.any():
        lo[valid] = np.nanpercentile(chans[..., valid], percent, axis=(0, 1))
        hi[valid] = np.nanpercentile(chans[..., valid], 100.0 - percent, axis=(0, 1))
    out = np.nan_to_num(np.clip((chans - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0), nan=0.0)
    return out[..., 0] if img.ndim == 2 else out


def rgb_composite(
    cube: Cube, wavelengths_nm: Sequence[float] = DEFAULT_RGB_NM, *, percent: float = 2.0
) -> tuple[np.ndarray, list[int]]:
    """(H, W, 3) float32 RGB from the bands nearest the three wavelengths, percentile-stretched per channel.

    Returns the image and the three band indices used.
    """
    bands = [nearest_band(cube, w) for w in wavelengths_nm]
    rgb = np.stack([band_image(cube, b) for b in bands], axis=-1)
    return stretch(rgb, percent), bands


def rgb_problems(cube: Cube, wavelengths_nm: Sequence[float], bands: Sequence[int]) -> list[str]:
    """What makes the composite of `bands` (chosen for `wavelengths_nm`) other than it looks: channels on
    one band (no wavelengths, or targets outside the cube's range) and bands flagged bad; [] when none."""
    problems = []
    if cube.wavelengths_nm is None:
        asked, got = "/".join(f"{w:g}" for w in wavelengths_nm), "/".join(str(b + 1) for b in bands)
        problems.append(f"the cube has no wavelengths: {asked} were taken as band indices from 0, which "
                        f"gives bands {got} of {cube.shape[2]} (as the slider counts)")
    elif len(set(bands)) < len(bands):
        nm = np.asarray(cube.wavelengths_nm, dtype=np.float64)
        problems.append(f"{'/'.join(f'{w:g}' for w in wavelengths_nm)} nm fall on {len(set(bands))} band(s) "
                        f"of a cube spanning {nm.min():.0f}-{nm.max():.0f} nm, so its channels repeat")
    if cube.bad_bands is not None and (bad := sorted({b for b in bands if cube.bad_bands[b]})):
        problems.append(f"band{'s' if len(bad) > 1 else ''} {', '.join(str(b + 1) for b in bad)} "
                        "(counting from 1) flagged bad in the file")
    return problems


def pixel_spectrum(cube: Cube, row: int, col: int) -> np.ndarray:
    """Reflectance spectrum (B,) float64 of one pixel, NaN where it has no data."""
    return without_ignored(cube, cube.data[row, col]) * scale(cube)


def region_spectrum(cube: Cube, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard deviation (B,) of the reflectance over the pixels where `mask` (H, W) is set,
    no-data values left out, and the number of pixels with data; reads only the rows the mask touches."""
    mask = np.asarray(mask, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError("the region holds no pixel of the cube")
    values = without_ignored(cube, np.concatenate([np.asarray(cube.data[r])[mask[r]] for r in rows]))
    values *= scale(cube)
    values = values[~np.isnan(values).all(axis=1)]
    if not values.size:
        raise ValueError("the region holds only no-data pixels")
    return np.nanmean(values, axis=0), np.nanstd(values, axis=0), int(values.shape[0])
