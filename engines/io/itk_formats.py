"""NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd) volumes: geometry from SimpleITK, raw data memory-mapped.

SimpleITK's `ReadImageInformation` gives the geometry (origin, spacing, direction: LPS) and pixel type
without reading voxels. When the voxels are stored raw (uncompressed, one data file), they are
memory-mapped read-only at the data offset the header gives; otherwise SimpleITK reads them whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nrrd
import numpy as np
import SimpleITK as sitk

from engines.errors import InputError
from engines.io.geometry import check_affine, itk_affine, itk_geometry_3d
from engines.volume import PLANAR, Volume

_SITK_DTYPES = {
    sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16, sitk.sitkInt16: np.int16,
    sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32, sitk.sitkUInt64: np.uint64,
    sitk.sitkInt64: np.int64, sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64,
}
_META_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}
_HEADER_LIMIT = 1 << 20  # a MetaImage header is text; its data starts within the first MiB


@dataclass(frozen=True)
class RawLayout:
    """Where raw voxels lie: `data_file` from byte `offset`, element byte order big-endian or not."""

    data_file: str
    offset: int
    big_endian: bool


def itk_message(exc: Exception) -> str:
    """The useful part of an ITK exception (its "Description:", or its "ITK ERROR:" line without the class
    and address), not the whole multi-line dump, nor a "Reason: Success" (errno 0) that says nothing."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Description:"):
            return line.removeprefix("Description:").strip()[:300]
    for line in lines:
        if line.startswith("ITK ERROR:"):
            text = line.split("): ", 1)[-1]
            reason = next((r for r in lines if r.startswith("Reason:") and r != "Reason: Success"), "")
            return f"{text} {reason}".strip()[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def read_itk_volume(path: str, *, kind: str) -> Volume:
    """Read a MetaImage (`kind` "MetaImage") or NRRD (`kind` "NRRD") file as a Volume (data axes x, y, z)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.SetImageIO("MetaImageIO" if kind == "MetaImage" else "NrrdImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"not a readable {kind} image ({itk_message(exc)})", path) from exc
    size = [int(n) for n in reader.GetSize()]
    if reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"has {reader.GetNumberOfComponents()} values per voxel (a vector or colour image); "
            "Tessera reads scalar volumes",
            path,
        )
    if not 2 <= len(size) <= 4:
        raise InputError(f"expected a 3D image, found {len(size)} dimensions {size}", path)
    affine = itk_affine(*itk_geometry_3d(reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection()))

    fields: dict[str, str] = {}
    layout = _metaimage_layout(path, fields) if kind == "MetaImage" else _nrrd_layout(path)
    dtype = _SITK_DTYPES.get(reader.GetPixelID())
    if layout is not None and dtype is None:  # a pixel type numpy cannot map directly: let ITK convert
        layout = None
    if layout is not None:
        data = _memmap(path, layout, dtype, size)
    else:
        try:
            image = sitk.ReadImage(path, imageIO=reader.GetImageIO())
        except RuntimeError as exc:
            raise InputError(f"the {kind} data cannot be read ({itk_message(exc)})", path) from exc
        data = sitk.GetArrayFromImage(image).transpose()  # ITK's array is (z, y, x): back to (x, y, z)

    warnings: list[str] = []
    planar = data.ndim == 2
    if planar:
        data = data[:, :, np.newaxis]
    elif data.ndim == 4:
        if size[3] > 1:
            warnings.append(f"4D image with {size[3]} volumes: only the first is used")
        data = data[..., 0]
    return Volume(
        data=data,
        affine=check_affine(affine, path),
        modality=_META_MODALITIES.get(fields.get("modality", "")),
        meta={"format": kind, "memory_mapped": layout is not None, **({PLANAR: True} if planar else {})},
        source=path,
        warnings=warnings,
    )


def _memmap(path: str, layout: RawLayout, dtype: Any, size: list[int]) -> np.memmap:
    """Read-only memmap of raw voxels, shape `size` in ITK index order (x fastest on disk)."""
    dtype = np.dtype(dtype).newbyteorder(">" if layout.big_endian else "<")
    nbytes = int(np.prod(size)) * dtype.itemsize
    try:
        available = os.path.getsize(layout.data_file) - layout.offset
    except OSError as exc:
        raise InputError(f"its data file {layout.data_file} cannot be opened ({exc.strerror})", path) from exc
    if available < nbytes:
        raise InputError(f"the file is truncated: {max(available, 0)} bytes of voxel data, "
                         f"the header needs {nbytes}", path)
    data = np.memmap(layout.data_file, dtype=dtype, mode="r", offset=layout.offset, shape=tuple(size[::-1]))
    return data.transpose()


def _metaimage_layout(path: str, fields: dict[str, str]) -> RawLayout | None:
    """Raw layout of a MetaImage file, or None when SimpleITK must read it (compressed, ASCII, file lists).

    Fills `fields` (lower-case keys) with the header's key = value lines.
    """
    with open(path, "rb") as fobj:
        head = fobj.read(_HEADER_LIMIT)
    offset = 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        key, sep, value = line.decode("latin-1").partition("=")
        if not sep:
            return None
        fields[key.strip().lower()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    else:
        return None
    data_file = fields["elementdatafile"]
    compressed = fields.get("compresseddata", "false").lower() == "true"
    text = fields.get("binarydata", "true")[:1].lower() in ("f", "0")  # BinaryData = False: ASCII numbers
    if compressed or text or data_file.upper().startswith("LIST") or "%" in data_file:
        return None
    byte_order = fields.get("binarydatabyteordermsb") or fields.get("elementbyteordermsb", "False")
    big_endian = byte_order.lower() == "true"
    header_size = int(fields.get("headersize", "0"))
    if data_file.upper() == "LOCAL":
        return RawLayout(path, offset, big_endian) if header_size == 0 else None
    if header_size < 0:  # -1: the data are the last bytes of the file; let SimpleITK find them
        return None
    return RawLayout(os.path.join(os.path.dirname(path), data_file), header_size, big_endian)


def _nrrd_layout(path: str) -> RawLayout | None:
    """Raw layout of a NRRD file (attached or one detached data file), or None for compressed/ASCII data or
    a header pynrrd cannot parse (SimpleITK, which gave the geometry, reads those)."""
    with open(path, "rb") as fobj:
        try:
            header = nrrd.read_header(fobj)
        except (nrrd.NRRDError, ValueError):  # stricter than ITK (e.g. spaces inside a vector): ITK reads it
            return None
        header_end = fobj.tell()
    data_file = header.get("data file", header.get("datafile"))
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if header.get("encoding") != "raw" or line_skip != 0 or byte_skip < 0:
        return None
    big_endian = header.get("endian", "little") == "big"
    if data_file is None:
        return RawLayout(path, header_end + byte_skip, big_endian)
    if not isinstance(data_file, str) or " " in data_file.strip() or data_file.upper().startswith("LIST"):
        return None
    return RawLayout(os.path.join(os.path.dirname(path), data_file), byte_skip, big_endian)
