"""Multi-band TIFF cubes through tifffile, memory-mapped when the file is uncompressed and contiguous.

The band axis is the one tifffile's series does not call Y or X: samples of a pixel (``YXS``, the usual
"contiguous" layout) or pages / planes (``SYX``, ``IYX``, ``QYX``...). Wavelengths are read, when present,
from GDAL's band metadata (``wavelength`` + ``wavelength_units`` items, as GDAL writes for ENVI-derived
files) or from tifffile's JSON description (a ``wavelengths_nm`` list, as `tifffile.imwrite(...,
metadata={"wavelengths_nm": [...]})` writes it).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import tifffile

from engines.cube import Cube
from engines.errors import InputError
from engines.io.cube_envi import wavelength_scale_to_nm
from engines.io.cubes import check_labels, check_wavelengths


def _open_array(path: str | os.PathLike) -> tuple[np.ndarray, str, tifffile.TiffFile]:
    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:  # IndexError: no image in it
        raise InputError(f"not a readable TIFF ({exc})", path) from exc
    try:
        data = tifffile.memmap(path, series=0, mode="r")
    except ValueError:  # compressed or scattered strips: cannot be memory-mapped
        try:
            data = series.asarray()
        except Exception as exc:  # strips past the end of a cut file, a codec's own error for damaged data
            raise InputError(f"the TIFF's image data cannot be read ({exc})", path) from exc
    keep = [i for i, n in enumerate(series.shape) if n != 1 or series.axes[i] in "YX"]
    return data.reshape([series.shape[i] for i in keep]), "".join(series.axes[i] for i in keep), tif


def _band_axis(axes: str, shape: tuple[int, ...], path: str | os.PathLike,
               rows_cols: tuple[int, int] | None, warnings: list[str]) -> int:
    """The axis of `shape` that holds the bands: the one that is not Y or X, unless that axis is the file's
    pages and the ground truth's `rows_cols` say the pages are rows (a (rows, columns, bands) array saved
    by `tifffile.imwrite(path, cube)` is stored one row per page). Pages read as bands without ground
    truth to confirm it add a warning."""
    if len(shape) != 3 or "Y" not in axes or "X" not in axes:
        raise InputError(
            f"a cube TIFF must hold one 3-D image (rows, columns, bands); this one is "
            f"{'x'.join(map(str, shape))} with axes {axes!r}",
            path,
        )
    axis = next(i for i, a in enumerate(axes) if a not in "YX")
    if axis != 0 or axes[0] == "S":  # samples of each pixel: bands, no doubt
        return axis
    if rows_cols is not None and tuple(rows_cols) == tuple(shape[:2]) != tuple(shape[1:]):
        warnings.append(f"the file's {shape[0]} pages of {shape[1]} x {shape[2]} are read as the rows of a "
                        f"(rows, columns, bands) cube, as its ground truth's shape says")
        return 2
    if rows_cols is None or tuple(rows_cols) == tuple(shape[:2]):  # nothing, or nothing certain, to go by
        warnings.append(f"each of the file's {shape[0]} pages is read as one band of {shape[1]} x {shape[2]} "
                        "pixels; if it holds a (rows, columns, bands) array saved one row per page, open it "
                        "with its ground truth (which tells them apart) or save the bands as samples "
                        "(photometric='minisblack', planarconfig='contig')")
    return axis


def _gdal_wavelengths(tif: tifffile.TiffFile, bands: int) -> tuple[np.ndarray | None, str | None]:
    xml = tif.pages.first.tags.get("GDAL_METADATA")
    if xml is None:
        return None, None
    values: dict[int, float] = {}
    units = None
    for item in ET.fromstring(xml.value).iter("Item"):
        name = (item.get("name") or "").lower()
        if item.get("sample") is None:
            continue
        if name in ("wavelength", "central_wavelength_um"):
            values[int(item.get("sample"))] = float(item.text)
            units = "micrometers" if name == "central_wavelength_um" else units
        elif name == "wavelength_units":
            units = item.text
    if len(values) != bands:
        return None, None
    return np.array([values[i] for i in range(bands)]), units


def read_tiff_cube(path: str | os.PathLike, *, rows_cols: tuple[int, int] | None = None) -> Cube:
    """Read a multi-band TIFF as a Cube whose ``data`` is an (H, W, B) view (memory-mapped when possible);
    `rows_cols`, the ground truth's shape if known, tells a file of band pages from one of row pages."""
    data, axes, tif = _open_array(path)
    warn: list[str] = []
    with tif:
        axis = _band_axis(axes, data.shape, path, rows_cols, warn)
        bands = data.shape[axis]
        wl, units = _gdal_wavelengths(tif, bands)
        shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    if wl is None and "wavelengths_nm" in shaped:
        wl, units = np.asarray(shaped["wavelengths_nm"], dtype=np.float64), "nm"
    if wl is not None:
        factor, note = wavelength_scale_to_nm(units, wl)
        warn += [note] if note else []
        wl = None if factor is None else check_wavelengths(wl * factor, bands, path, warn)
    meta = {
        "format": "TIFF",
        "axes": axes,
        "band_axis": axis,
        "dtype": str(data.dtype),
        "lazy": isinstance(data, np.memmap) or isinstance(getattr(data, "base", None), np.memmap),
    }
    return Cube(
        data=np.moveaxis(data, axis, -1), wavelengths_nm=wl, meta=meta, source=str(path), warnings=warn
    )


def read_tiff_labels(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """A single-band TIFF as (H, W) integer labels (no class names: TIFF has no place for them)."""
    try:
        labels = np.squeeze(tifffile.imread(path))
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputError(f"not a readable TIFF ({exc})", path) from exc
    return check_labels(labels, path), []
