"""NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd) volumes: geometry from SimpleITK, raw data memory-mapped.

SimpleITK's `ReadImageInformation` gives the geometry (origin, spacing, direction: LPS) and pixel type
without reading voxels. When the voxels are stored raw (uncompressed, one data file), they are
memory-mapped read-only at the data offset the header gives. A NRRD's gzip data and a MetaImage's zlib data
are decompressed by StreamedVoxels: whole, to the end where the checksum is checked, or, for one pass over
a volume too large to hold (`stream`), as they are indexed. SimpleITK reads what is left (ASCII data, lists
of files, other encodings) whole.
"""

from __future__ import annotations

import bz2
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import nrrd
import numpy as np
import SimpleITK as sitk

from engines.errors import InputError
from engines.io.geometry import check_affine, itk_affine, itk_geometry_3d
from engines.io.lazy_arrays import ClosingReader, DeflateReader, StreamedVoxels
from engines.volume import PLANAR, Volume

_SITK_DTYPES = {
    sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16, sitk.sitkInt16: np.int16,
    sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32, sitk.sitkUInt64: np.uint64,
    sitk.sitkInt64: np.int64, sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64,
}
_META_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}
_NRRD_COMPRESSIONS = {"gzip": "deflate", "gz": "deflate", "bzip2": "bzip2", "bz2": "bzip2"}
_HEADER_LIMIT = 1 << 20  # a MetaImage header is text; its data starts within the first MiB


@dataclass(frozen=True)
class RawLayout:
    """Where voxels lie: `data_file` from byte `offset`, element byte order big-endian or not, stored raw
    or `compressed` ("deflate": a NRRD's gzip, a MetaImage's zlib data; "bzip2": a NRRD's bzip2; `offset`
    is then where the compressed bytes start)."""

    data_file: str
    offset: int
    big_endian: bool
    compressed: str | None = None

    def open_compressed(self) -> BinaryIO:
        """The compressed voxels' bytes, decompressed as they are read (a new stream each call)."""
        raw = open(self.data_file, "rb")  # noqa: SIM115 - the reader returned closes it
        raw.seek(self.offset)
        return DeflateReader(raw) if self.compressed == "deflate" else ClosingReader(bz2.BZ2File(raw), raw)


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


def read_itk_volume(path: str, *, kind: str, stream: bool = False) -> Volume:
    """Read a MetaImage (`kind` "MetaImage") or NRRD (`kind` "NRRD") file as a Volume (data axes x, y, z).
    With `stream`, compressed voxels are StreamedVoxels, not read now."""
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
    if layout is not None and layout.compressed:
        _data_bytes(path, layout)  # the data file can be opened: its absence is named now, not mid-pass
        data = StreamedVoxels(path, kind, layout.open_compressed, 0, _stored_dtype(dtype, layout), size)
        if not stream:  # read whole now, checksum checked (ITK only prints a MetaImage's failed one)
            data = data[...]
    elif layout is not None:
        data = _memmap(path, layout, dtype, size)
    else:
        try:
            image = sitk.ReadImage(path, imageIO=reader.GetImageIO())
        except RuntimeError as exc:
            raise InputError(f"the {kind} data cannot be read ({itk_message(exc)})", path) from exc
        data = sitk.GetArrayFromImage(image).transpose()  # ITK's array is (z, y, x): back to (x, y, z)

    warnings: list[str] = []
    planar = len(size) == 2
    if planar and data.ndim == 2:
        data = data[:, :, np.newaxis]
    elif data.ndim == 4:
        data = data[..., 0]
    if len(size) == 4 and size[3] > 1:
        warnings.append(f"4D image with {size[3]} volumes: only the first is used")
    return Volume(
        data=data,
        affine=check_affine(affine, path),
        modality=_META_MODALITIES.get(fields.get("modality", "")),
        meta={"format": kind, "memory_mapped": layout is not None and not layout.compressed,
              **({PLANAR: True} if planar else {})},
        source=path,
        warnings=warnings,
    )


def _stored_dtype(dtype: Any, layout: RawLayout) -> np.dtype:
    """`dtype` in the byte order the file stores it."""
    return np.dtype(dtype).newbyteorder(">" if layout.big_endian else "<")


def _memmap(path: str, layout: RawLayout, dtype: Any, size: list[int]) -> np.memmap:
    """Read-only memmap of raw voxels, shape `size` in ITK index order (x fastest on disk)."""
    dtype = _stored_dtype(dtype, layout)
    nbytes = int(np.prod(size)) * dtype.itemsize
    if (available := _data_bytes(path, layout)) < nbytes:
        raise InputError(f"the file is truncated: {max(available, 0)} bytes of voxel data, "
                         f"the header needs {nbytes}", path)
    data = np.memmap(layout.data_file, dtype=dtype, mode="r", offset=layout.offset, shape=tuple(size[::-1]))
    return data.transpose()


def _data_bytes(path: str, layout: RawLayout) -> int:
    """How many bytes the data file holds from the layout's offset on; InputError if it cannot be read."""
    try:
        with open(layout.data_file, "rb") as fobj:
            return os.fstat(fobj.fileno()).st_size - layout.offset
    except OSError as exc:
        raise InputError(f"its data file {layout.data_file} cannot be opened ({exc.strerror})", path) from exc


def _metaimage_layout(path: str, fields: dict[str, str]) -> RawLayout | None:
    """Layout of a MetaImage file, or None when SimpleITK must read it (ASCII, file lists).

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
    if text or data_file.upper().startswith("LIST") or "%" in data_file:
        return None
    byte_order = fields.get("binarydatabyteordermsb") or fields.get("elementbyteordermsb", "False")
    big_endian = byte_order.lower() == "true"
    header_size = int(fields.get("headersize", "0"))
    compression = "deflate" if compressed else None
    if data_file.upper() == "LOCAL":
        return RawLayout(path, offset, big_endian, compression) if header_size == 0 else None
    if header_size < 0 or (compressed and header_size):  # -1: the data end the file; let SimpleITK find them
        return None
    return RawLayout(os.path.join(os.path.dirname(path), data_file), header_size, big_endian, compression)


def _nrrd_layout(path: str) -> RawLayout | None:
    """Layout of a NRRD file's raw or gzip data (attached or one detached data file), or None for other
    encodings, skips inside gzip data, or a header pynrrd cannot parse (SimpleITK, which gave the geometry,
    reads those)."""
    with open(path, "rb") as fobj:
        try:
            header = nrrd.read_header(fobj)
        except (nrrd.NRRDError, ValueError):  # stricter than ITK (e.g. spaces inside a vector): ITK reads it
            return None
        header_end = fobj.tell()
    data_file = header.get("data file", header.get("datafile"))
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    compressed = _NRRD_COMPRESSIONS.get(header.get("encoding"))
    if (header.get("encoding") != "raw" and not compressed) or line_skip != 0 or byte_skip < 0 or (
            compressed and byte_skip):  # a byte skip applies to the decompressed data
        return None
    big_endian = header.get("endian", "little") == "big"
    if data_file is None:
        return RawLayout(path, header_end + byte_skip, big_endian, compressed)
    if not isinstance(data_file, str) or " " in data_file.strip() or data_file.upper().startswith("LIST"):
        return None
    return RawLayout(os.path.join(os.path.dirname(path), data_file), byte_skip, big_endian, compressed)
