"""ENVI cubes (.hdr + .img/.raw/.bsq/.bil/.bip/...) through `spectral`, memory-mapped, never loaded whole."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import spectral
from spectral.io import envi

from engines.cube import Cube
from engines.errors import InputError
from engines.io.cubes import check_wavelengths

# Data-file extensions looked for beside a header (and the header's own name without ".hdr").
DATA_SUFFIXES = ("", ".img", ".raw", ".bsq", ".bil", ".bip", ".dat", ".bin", ".hyspex")
# Fields without which the file cannot be decoded (spectral's own list).
REQUIRED_FIELDS = ("samples", "lines", "bands", "data type", "interleave", "byte order")
# ENVI's "wavelength units" (and GDAL's) that are lengths -> nanometres per unit.
_LENGTH_UNITS_NM = {
    **dict.fromkeys(("nanometers", "nanometer", "nanometres", "nanometre", "nm"), 1.0),
    **dict.fromkeys(("micrometers", "micrometer", "micrometres", "micrometre", "microns", "micron", "um",
                     "µm"), 1e3),
    **dict.fromkeys(("millimeters", "millimeter", "millimetres", "millimetre", "mm"), 1e6),
    **dict.fromkeys(("centimeters", "centimeter", "centimetres", "centimetre", "cm"), 1e7),
    **dict.fromkeys(("meters", "meter", "metres", "metre", "m"), 1e9),
    **dict.fromkeys(("angstroms", "angstrom"), 0.1),
}
# ENVI's units that are not wavelengths: the bands' positions cannot be given in nm.
_OTHER_UNITS = {"index", "wavenumber", "ghz", "mhz", "hz", "data value"}


def is_envi_header(path: str | os.PathLike) -> bool:
    """True if `path` is a text file whose first line starts with "ENVI" (an Analyze .hdr is binary)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"ENVI"
    except OSError:
        return False


def header_beside(path: str | os.PathLike) -> Path | None:
    """The ENVI header of a data file (``x.hdr`` or ``x.img.hdr`` beside ``x.img``), or None."""
    p = Path(path)
    for cand in (p.with_suffix(".hdr"), p.with_suffix(".HDR"), Path(str(p) + ".hdr"), Path(str(p) + ".HDR")):
        if cand != p and cand.is_file() and is_envi_header(cand):
            return cand
    return None


def envi_pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """(header, data file) for either of the two paths; InputError when the partner is missing."""
    p = Path(path)
    if p.suffix.lower() == ".hdr":
        if not is_envi_header(p):
            raise InputError("not an ENVI header (its first line must start with 'ENVI')", path)
        stem = p.with_suffix("")
        for suffix in DATA_SUFFIXES:
            for cand in {Path(str(stem) + suffix), Path(str(stem) + suffix.upper())}:
                if cand.is_file() and cand != p:
                    return p, cand
        raise InputError(
            f"no ENVI data file beside the header (looked for {stem.name} with "
            f"{', '.join(s or '(no extension)' for s in DATA_SUFFIXES)})",
            path,
        )
    hdr = header_beside(p)
    if hdr is None:
        raise InputError("no ENVI header (.hdr) beside this data file", path)
    return hdr, p


def read_header(hdr: str | os.PathLike) -> dict:
    """The header's fields (keys lower-case, values strings or lists of strings); InputError if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spectral warns when it lower-cases field names
            return envi.read_envi_header(str(hdr))
    except (envi.EnviException, UnicodeDecodeError, IndexError, OSError) as exc:
        raise InputError(f"unreadable ENVI header ({exc or type(exc).__name__})", hdr) from exc


def _check_header(header: dict, hdr: Path, data_file: Path) -> np.dtype:
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        raise InputError(f"ENVI header is missing required field(s): {', '.join(missing)}", hdr)
    try:
        lines, samples, bands = (int(header[k]) for k in ("lines", "samples", "bands"))
        offset = int(header.get("header offset", 0))
        byte_order = int(header["byte order"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"ENVI header has a non-integer size field ({exc})", hdr) from exc
    if min(lines, samples, bands) < 1 or byte_order not in (0, 1):
        raise InputError(
            f"ENVI header sizes must be positive and 'byte order' 0 or 1 (lines={lines}, "
            f"samples={samples}, bands={bands}, byte order={byte_order})",
            hdr,
        )
    if str(header["data type"]) not in envi.envi_to_dtype:
        raise InputError(
            f"unsupported ENVI 'data type' {header['data type']!r} "
            f"(supported: {', '.join(sorted(envi.envi_to_dtype, key=int))})",
            hdr,
        )
    if str(header["interleave"]).lower() not in ("bsq", "bil", "bip"):
        raise InputError(f"ENVI 'interleave' must be bsq, bil or bip, not {header['interleave']!r}", hdr)
    dtype = np.dtype(envi.envi_to_dtype[str(header["data type"])])
    expected = offset + lines * samples * bands * dtype.itemsize
    actual = data_file.stat().st_size
    if actual != expected:
        raise InputError(
            f"ENVI header disagrees with the data file size: {lines} lines x {samples} samples x {bands} "
            f"bands x {dtype.itemsize} bytes + {offset} header offset = {expected} bytes, but "
            f"{data_file.name} has {actual} bytes",
            hdr,
        )
    return dtype.newbyteorder(">" if byte_order == 1 else "<")


def _floats(header: dict, key: str, n: int, hdr: Path) -> np.ndarray | None:
    if key not in header:
        return None
    values = header[key] if isinstance(header[key], list) else [header[key]]
    try:
        arr = np.array([float(v) for v in values if str(v).strip() != ""], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"ENVI header field '{key}' holds a non-number ({exc})", hdr) from exc
    if arr.size != n:
        raise InputError(f"ENVI header field '{key}' has {arr.size} values for {n} bands", hdr)
    return arr


def length_unit_nm(unit: str | None) -> float | None:
    """Nanometres per `unit` ("um", "Nanometers", ...); None when it is not a length ENVI or GDAL names."""
    return _LENGTH_UNITS_NM.get((unit or "").strip().lower())


def _number(header: dict, key: str, hdr: Path, default: float | None = None) -> float | None:
    """Header field `key` as a float (`default` when absent); InputError naming the header otherwise."""
    if key not in header:
        return default
    try:
        return float(header[key])
    except (TypeError, ValueError) as exc:
        raise InputError(f"ENVI header field '{key}' must be a number, not {header[key]!r}", hdr) from exc


def wavelength_scale_to_nm(units: str | None, values: np.ndarray) -> tuple[float | None, str | None]:
    """Factor turning `values` in `units` into nanometres (None when the unit is not a length: band index,
    wavenumber, frequency), and a warning when the unit had to be guessed or the values are dropped."""
    u = (units or "").strip().lower()
    if u in _LENGTH_UNITS_NM:
        return _LENGTH_UNITS_NM[u], None
    if u in _OTHER_UNITS:
        return None, f"band positions are given in {units!r}, not as wavelengths: bands are shown by number"
    guess_um = float(np.nanmax(values)) < 100.0  # 0.4-2.5 reads as micrometres, 400-2500 as nanometres
    given = "no wavelength units given" if not u else f"wavelength units {units!r} not recognised"
    return (1000.0 if guess_um else 1.0), (
        f"{given}: read as {'micrometres' if guess_um else 'nanometres'} from the values' magnitude"
    )


def read_envi_cube(path: str | os.PathLike) -> Cube:
    """Open an ENVI cube memory-mapped as (lines, samples, bands), whatever its interleave and byte order.

    Parameters
    ----------
    path : str or PathLike
        The .hdr, or the data file with a .hdr beside it.

    Returns
    -------
    Cube
        ``data`` is a read-only ``numpy.memmap`` view of shape (H, W, B) in the file's dtype (values as
        stored: the reflectance scale factor is in ``meta`` and not applied, so nothing is loaded);
        wavelengths in nm; ``bad_bands`` from ``bbl``.
    """
    hdr, data_file = envi_pair(path)
    header = read_header(hdr)
    dtype = _check_header(header, hdr, data_file)
    try:
        img = envi.open(str(hdr), str(data_file))
        data = img.open_memmap(interleave="bip")
    except (envi.EnviException, spectral.SpyException, ValueError, OSError) as exc:
        raise InputError(f"spectral could not open the ENVI file ({exc})", hdr) from exc

    bands = int(header["bands"])
    warn: list[str] = []
    wl = _floats(header, "wavelength", bands, hdr)
    fwhm = _floats(header, "fwhm", bands, hdr)
    units = header.get("wavelength units")
    if wl is not None:
        factor, note = wavelength_scale_to_nm(units, wl)
        if note:
            warn.append(note)
        wl = None if factor is None else check_wavelengths(wl * factor, bands, hdr, warn)
        if fwhm is not None:
            fwhm = None if factor is None else fwhm * factor
    bbl = _floats(header, "bbl", bands, hdr)
    meta: dict = {
        "format": "ENVI",
        "header": str(hdr),
        "data_file": str(data_file),
        "interleave": str(header["interleave"]).lower(),
        "byte_order": "big" if dtype.byteorder == ">" else "little",
        "dtype": str(np.dtype(dtype.str[1:])),
        "lazy": True,
        "reflectance_scale_factor": _number(header, "reflectance scale factor", hdr, 1.0),
    }
    if not (np.isfinite(meta["reflectance_scale_factor"]) and meta["reflectance_scale_factor"] != 0):
        raise InputError(f"ENVI header field 'reflectance scale factor' must be a non-zero number, not "
                         f"{header['reflectance scale factor']!r}", hdr)
    if "data ignore value" in header:
        meta["data_ignore_value"] = _number(header, "data ignore value", hdr)
    if fwhm is not None:
        meta["fwhm_nm"] = fwhm
    for key in ("description", "sensor type", "band names", "file type"):
        if key in header:
            meta[key.replace(" ", "_")] = header[key]
    return Cube(
        data=data,
        wavelengths_nm=wl,
        bad_bands=None if bbl is None else bbl == 0,
        meta=meta,
        source=str(path),
        warnings=warn,
    )


def read_envi_labels(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """A single-band ENVI image (e.g. an ENVI Classification file) as (H, W) int labels and class names.

    Class names come from the header's ``class names`` (its first entry, "Unclassified", is class 0).
    """
    hdr, data_file = envi_pair(path)
    header = read_header(hdr)
    _check_header(header, hdr, data_file)
    if int(header["bands"]) != 1:
        raise InputError(f"ground truth must have 1 band, this ENVI file has {header['bands']}", hdr)
    try:
        labels = np.asarray(envi.open(str(hdr), str(data_file)).open_memmap(interleave="bip"))[:, :, 0]
    except (envi.EnviException, spectral.SpyException, ValueError, OSError) as exc:
        raise InputError(f"spectral could not open the ENVI file ({exc})", hdr) from exc
    names = header.get("class names")
    names = list(names[1:]) if isinstance(names, list) and len(names) > 1 else []
    return labels, names
