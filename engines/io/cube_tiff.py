"""Multi-band TIFF cubes through tifffile, memory-mapped when the file is uncompressed and contiguous.

The band axis is the one tifffile's series does not call Y or X: samples of a pixel (``YXS``, the usual
"contiguous" layout) or pages / planes (``SYX``, ``IYX``, ``QYX``...). Wavelengths are read, when present,
from GDAL's band metadata (``wavelength`` + ``wavelength_units`` items, as GDAL writes for ENVI-derived
files) or from tifffile's JSON description (a ``wavelengths_nm`` list, as `tifffile.imwrite(...,
metadata={"wavelengths_nm": [...]})` writes it).
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import tifffile

from engines.cube import Cube
from engines.errors import InputError
from engines.io.cube_envi import length_unit_nm, wavelength_scale_to_nm
from engines.io.cubes import check_labels, check_wavelengths


class _Logged(logging.Handler):
    """Collects what tifffile logs (it reports pages it could not reach only there, and reads on)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# What tifffile logs for a file whose page chain or stated shape its bytes do not hold (a cut-short copy):
# it then reads fewer pages, i.e. fewer bands, as if nothing were wrong.
_DAMAGE = ("invalid page offset", "failed to reshape")


def _open_array(path: str | os.PathLike) -> tuple[np.ndarray, str, tifffile.TiffFile]:
    logger, logged = logging.getLogger("tifffile"), _Logged()
    logger.addHandler(logged)
    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        len(tif.pages)  # walks the whole page chain, so that a broken link is logged now
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:  # IndexError: no image in it
        raise InputError(f"not a readable TIFF ({exc})", path) from exc
    finally:
        logger.removeHandler(logged)
    damage = [m.split("> ", 1)[-1] for m in logged.messages if any(d in m for d in _DAMAGE)]
    if damage:
        tif.close()
        raise InputError(f"the TIFF is damaged (cut short?): tifffile reports {'; '.join(damage)}", path)
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


# A GDAL wavelength: a number, optionally followed by its unit ("0.45", "450 nm", "0.45 micrometers").
_VALUE_AND_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d].*?)?\s*$")


def _gdal_wavelengths(
    tif: tifffile.TiffFile, bands: int, path: str | os.PathLike, warnings: list[str]
) -> tuple[np.ndarray | None, str | None]:
    """Band wavelengths from GDAL_METADATA, and their units (None when not given; "nm" when the items
    carry their own units, converted here). XML that does not parse is ignored with a warning (it says
    nothing about the pixels, which are fine); a wavelength item whose band or value cannot be read is an
    InputError naming the file, as a bad ENVI 'wavelength' field is."""
    xml = tif.pages.first.tags.get("GDAL_METADATA")
    if xml is None:
        return None, None
    try:
        root = ET.fromstring(xml.value)
    except (ET.ParseError, TypeError) as exc:
        warnings.append(f"the TIFF's GDAL_METADATA is not well-formed XML ({exc}): it is ignored, so the "
                        "bands have no wavelengths")
        return None, None
    values: dict[int, tuple[float, str | None]] = {}
    units = None
    for item in root.iter("Item"):
        name = (item.get("name") or "").lower()
        if item.get("sample") is None:
            continue
        if name in ("wavelength", "central_wavelength_um"):
            sample = item.get("sample")
            if not sample.strip().isdigit():
                raise InputError(f"GDAL_METADATA item {name!r} has sample={sample!r}; GDAL numbers the bands "
                                 "0, 1, 2 ...", path)
            values[int(sample)] = _gdal_value(item.text, name, int(sample), path)
            units = "micrometers" if name == "central_wavelength_um" else units
        elif name == "wavelength_units":
            units = item.text
    if not values:
        return None, None
    if sorted(values) != list(range(bands)):
        warnings.append(f"GDAL_METADATA gives wavelengths for bands {sorted(values)[:8]}"
                        f"{' ...' if len(values) > 8 else ''} (numbered from 0), not one for each of the "
                        f"{bands} bands: they are ignored")
        return None, None
    own = {u for _, u in values.values() if u is not None}
    if not own:
        return np.array([values[i][0] for i in range(bands)]), units
    # some items name their unit: those are converted; the others take the file's units, else the items'
    bare_units = units if units is not None or len(own) != 1 else next(iter(own))
    bare_factor = length_unit_nm(bare_units)
    if bare_factor is None and any(u is None for _, u in values.values()):
        raise InputError(f"GDAL_METADATA wavelengths name their unit ({', '.join(sorted(own))}) on some "
                         f"bands but not on others, and no single length unit covers the rest", path)
    given = [values[i] for i in range(bands)]
    nm = [v * (length_unit_nm(u) if u is not None else bare_factor) for v, u in given]
    return np.array(nm), "nm"


def _gdal_value(
    text: str | None, name: str, sample: int, path: str | os.PathLike
) -> tuple[float, str | None]:
    """(number, unit or None) of one GDAL wavelength item; InputError when it is not a number with,
    optionally, a length unit."""
    m = _VALUE_AND_UNIT.match(text or "")
    unit = None if m is None or m.group(2) is None else m.group(2)
    if m is None or (unit is not None and length_unit_nm(unit) is None):
        raise InputError(f"GDAL_METADATA item {name!r} of band {sample} is {text!r}, not a number with an "
                         "optional length unit (e.g. 0.45, 0.45 um, 450 nm)", path)
    return float(m.group(1)), unit


def _gdal_no_data(tif: tifffile.TiffFile, path: str | os.PathLike) -> float | None:
    """GDAL's no-data value (the GDAL_NODATA tag, text), or None without one or for "nan" (NaN is no data
    anyway); InputError naming the file for text that is no number."""
    tag = tif.pages.first.tags.get("GDAL_NODATA")
    if tag is None:
        return None
    text = str(tag.value).strip().strip("\x00")
    try:
        value = float(text)
    except ValueError as exc:
        raise InputError(f"the TIFF's GDAL_NODATA tag is {text!r}, not a number", path) from exc
    return None if np.isnan(value) else value


def read_tiff_cube(path: str | os.PathLike, *, rows_cols: tuple[int, int] | None = None) -> Cube:
    """Read a multi-band TIFF as a Cube whose ``data`` is an (H, W, B) view (memory-mapped when possible);
    `rows_cols`, the ground truth's shape if known, tells a file of band pages from one of row pages."""
    data, axes, tif = _open_array(path)
    warn: list[str] = []
    with tif:
        axis = _band_axis(axes, data.shape, path, rows_cols, warn)
        bands = data.shape[axis]
        wl, units = _gdal_wavelengths(tif, bands, path, warn)
        no_data = _gdal_no_data(tif, path)
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
    if no_data is not None:  # left out of spectra, statistics, stretches and classification, as ENVI's
        meta["data_ignore_value"] = no_data
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
