"""NIfTI (.nii, .nii.gz) and FreeSurfer MGH (.mgh, .mgz) volumes through nibabel; NIfTI writing.

Uncompressed files are memory-mapped read-only (nothing is copied, the user's file cannot be written).
Compressed files are read whole at once (to the end, where gzip checks its checksum), so a damaged file is
reported here and not later in the viewer, and kept as stored (int16 stays int16) - or, for one pass over a
volume too large to hold (a training job's launcher), streamed: decompressed as they are indexed in file
order (StreamedVoxels). A scaled 3D file (scl_slope/scl_inter) of either kind, or the first volume of a 4D
one, or a compressed 2D file, is scaled part by part as it is read (ScaledProxy), never held whole as
float64; an uncompressed scaled 2D file is scaled at once.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener
from nibabel.volumeutils import apply_read_scaling

from engines.errors import InputError
from engines.files import NIFTI_SUFFIXES, check_output, created_mode
from engines.io.geometry import check_affine
from engines.volume import PLANAR, Volume

# NIfTI spatial units -> millimetres (ITK scales the same way).
# Voxel axes further from perpendicular than this (the cosine of the angle between two) shear: a qform
# (rotation, zooms, translation) cannot hold them, and readers that prefer it (ITK) would misplace voxels.
# Direction cosines written to 6 decimals stay far below it; a gantry tilt of 1 degree is 0.017.
SHEAR_COSINE = 1e-4
_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}

READ_PIECE = 1 << 20  # bytes decompressed at a time
# What nibabel raises for damaged files: a bad header (codes, dimensions), short or odd data, bad gzip.
_READ_ERRORS = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError,
                ValueError, KeyError, TypeError, OverflowError, zlib.error, nib.freesurfer.mghformat.MGHError)


class _LazyArray:
    """What numpy and the engines ask of an array-like read part by part: `shape` and `dtype` (set by the
    subclass), `ndim`, `len`, and the whole array through `np.asarray` (self[...])."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype or self.dtype)


class ScaledProxy(_LazyArray):
    """Stored values and a slope and intercept as an array-like: indexing scales only what is asked for.

    Indexing slices the stored array (the file's read-only memory map, or a compressed file's values as
    stored, e.g. int16 where the scaled values would be float64) and scales that part as nibabel's
    `apply_read_scaling` does (same dtype, same values), with one temporary rather than two. (nibabel's own
    slicing of a proxy reads whole runs of the file for a box cut across its fastest axis, so a volume read
    slab by slab through it would be read again for every slab.)

    Parameters
    ----------
    stored : ndarray, shape (I, J, K)
        The values as stored in the file (nibabel's ``proxy.get_unscaled()``, or a view of it).
    slope, inter : float
        The proxy's scaling: value = stored * slope + inter.
    """

    def __init__(self, stored: np.ndarray, slope: float, inter: float) -> None:
        self._stored = stored
        corner = np.asarray(stored[tuple(slice(0, 1) for _ in stored.shape)])
        self.dtype = np.asarray(apply_read_scaling(corner, slope, inter)).dtype  # nibabel's choice
        self._slope, self._inter = self.dtype.type(slope), self.dtype.type(inter)
        self.shape = tuple(int(n) for n in stored.shape)

    @property
    def strides(self) -> tuple[int, ...]:
        """The stored array's strides: which axis is fastest in the file (for reading in its order)."""
        return self._stored.strides

    @property
    def stored_and_scaling(self) -> tuple[np.ndarray, tuple[float, float]]:
        """The stored array and (slope, intercept): for work that scales after reading (resampling)."""
        return self._stored, (float(self._slope), float(self._inter))

    def __getitem__(self, key: Any) -> np.ndarray:
        scaled = np.asarray(np.multiply(np.asarray(self._stored[key]), self._slope, dtype=self.dtype))
        if self._inter != 0:  # as nibabel: no addition of 0 (which would turn -0.0 into 0.0)
            scaled += self._inter
        return scaled


class StreamedVoxels(_LazyArray):
    """A compressed file's stored voxels (the first 3D volume) as an array-like decompressed as it is indexed.

    For one pass over a volume too large to hold: parts asked for in the file's order (slabs along its last,
    slowest axis) decompress the file once in all, holding one part at a time; a part that starts before the
    end of the last one read decompresses from the beginning again. Damage (a truncated or corrupt stream) is
    found when the part holding it is read, and raised as InputError naming the file. Indexing takes ints and
    slices (the last axis's become whole planes read); the result is a new array in native byte order. Reading
    the last plane of a file of one volume reads to the stream's end, where gzip's checksum finds a changed
    byte.
    """

    def __init__(self, path: str, proxy: Any, kind: str) -> None:
        self.path, self._kind, self._offset = path, kind, int(proxy.offset)
        self._stored = np.dtype(proxy.dtype)
        self.dtype = self._stored.newbyteorder("=")
        self.shape = (*(int(n) for n in proxy.shape[:3]), *(1,) * (3 - len(proxy.shape)))  # 2D: (I, J, 1)
        self._one_volume = math.prod(int(n) for n in proxy.shape[3:]) == 1  # the data ends with it
        size = self._stored.itemsize
        self.strides = (size, size * self.shape[0], size * self.shape[0] * self.shape[1])  # Fortran order
        self._file: Any = None
        self._position = 0

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if not all(k is Ellipsis or isinstance(k, slice) or (isinstance(k, int | np.integer)
                                                             and not isinstance(k, bool)) for k in key):
            raise TypeError(f"StreamedVoxels takes ints, slices and one Ellipsis, not {key!r}")
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if (at := next((i for i, k in enumerate(key) if k is Ellipsis), None)) is not None:
            key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (3 - len(key))
        # The result's shape, and numpy's own IndexError (too many indices, an int out of range), from a
        # view that holds no memory.
        shape = np.broadcast_to(np.zeros((), self.dtype), self.shape)[key].shape
        if 0 in shape:
            return np.empty(shape, self.dtype)
        last = key[2]
        planes = range(*last.indices(self.shape[2])) if isinstance(last, slice) else range(
            range(self.shape[2])[last], range(self.shape[2])[last] + 1)
        low = min(planes)
        block = self._planes(low, max(planes) + 1)
        inner = slice(planes.start - low, None, planes.step) if isinstance(last, slice) else 0
        return block[key[0], key[1], inner]

    def _planes(self, low: int, high: int) -> np.ndarray:
        """Planes low..high-1 of the last axis, read from the stream (reopened when they lie behind it)."""
        plane = self.shape[0] * self.shape[1] * self._stored.itemsize
        start, length = self._offset + low * plane, (high - low) * plane
        buffer = bytearray(length)
        try:
            if self._file is None or start < self._position:
                if self._file is not None:
                    self._file.close()
                self._file, self._position = ImageOpener(self.path, "rb"), 0
            self._file.seek(start)
            got, view = 0, memoryview(buffer)
            # In pieces: gzip builds each read as a new bytes object before copying it into the buffer.
            while got < length and (part := self._file.readinto(view[got:got + READ_PIECE])):
                got += part
            view.release()
            if got == length and high == self.shape[2] and self._one_volume:
                self._read_to_the_end()
        except _READ_ERRORS as exc:
            raise InputError(f"the compressed {self._kind} data is truncated or corrupt ({exc})", self.path
                             ) from exc
        self._position = start + got
        if got < length:
            whole = low + got // plane
            raise InputError(f"the compressed {self._kind} data is truncated: it ends after {whole} of its "
                             f"{self.shape[2]} slices", self.path)
        values = np.frombuffer(buffer, self._stored)
        if not self._stored.isnative:
            values = values.byteswap(inplace=True).view(self.dtype)  # in the buffer: no copy
        return values.reshape((*self.shape[:2], high - low), order="F")

    def _read_to_the_end(self) -> None:
        """Read past the data (an MGH's few tags) to the stream's end, where gzip checks its CRC; bytes after
        the last gzip member are no gzip data and are left alone, as nibabel and gzip -d leave them."""
        try:
            while self._file.read(1 << 16):
                pass
        except gzip.BadGzipFile as exc:
            if not str(exc).startswith("Not a gzipped file"):  # a CRC or length error: damage
                raise
        self._file.close()  # the pass is over: the next read starts again
        self._file = None


def read_nibabel_volume(path: str, *, kind: str, stream: bool = False) -> Volume:
    """Read a NIfTI or MGH/MGZ file as a Volume; `kind` ("NIfTI" or "MGH") names the format in messages.
    With `stream`, a compressed file's voxels are StreamedVoxels, not read now."""
    try:
        img = nib.load(path, mmap="r")
    except _READ_ERRORS as exc:
        reason = f"unrecognised header value {exc}" if isinstance(exc, KeyError) else str(exc)
        if _gzipped_but_not_named_so(path):
            suffix = ".nii.gz" if kind == "NIfTI" else ".mgz"
            reason = f"the file is gzip-compressed, so its name should end in {suffix}"
        raise InputError(f"not a readable {kind} image ({reason})", path) from exc
    if kind == "NIfTI" and not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"not a NIfTI image (nibabel reads it as {type(img).__name__})", path)
    header = img.header
    full_shape = tuple(int(n) for n in img.shape)
    shape = full_shape[:4] if all(n == 1 for n in full_shape[4:]) else full_shape  # (X, Y, Z, 1, 1) is 3D
    if len(shape) > 4 or len(shape) < 2:
        raise InputError(f"expected a 3D image, found {len(shape)} dimensions {shape}", path)
    if 0 in shape:
        raise InputError(f"the image is empty: an axis of length 0 in {full_shape}", path)
    dtype = img.get_data_dtype()
    if dtype.kind not in "biuf":
        raise InputError(f"voxels of type {dtype} (colour or complex values); Tessera reads scalar volumes",
                         path)
    if kind == "NIfTI":
        _check_pixdim(path, img)
    warnings: list[str] = []
    if len(shape) == 4 and shape[3] > 1:
        warnings.append(f"4D image with {shape[3]} volumes: only the first is used")
    try:
        data = _voxel_data(path, img, kind, first_volume=len(full_shape) > 3, stream=stream)
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"the {kind} data cannot be read ({exc})", path) from exc
    if len(data.shape) == 2:
        data = np.asanyarray(data)[:, :, np.newaxis]

    affine = np.asarray(img.affine, dtype=np.float64)
    meta: dict[str, Any] = {"format": kind}
    if len(shape) == 2:
        meta[PLANAR] = True
    if kind == "NIfTI":
        unit = header.get_xyzt_units()[0]
        if _UNIT_TO_MM.get(unit, 1.0) != 1.0:
            affine = affine.copy()
            affine[:3, :] *= _UNIT_TO_MM[unit]
            warnings.append(f"spatial unit is {unit}: converted to millimetres")
        description = header["descrip"].tobytes().split(b"\0")[0].decode("latin-1").strip()
        if description:
            meta["description"] = description
        meta["qform_code"], meta["sform_code"] = int(header["qform_code"]), int(header["sform_code"])
    return Volume(
        data=data,
        affine=check_affine(affine, path),
        meta=meta,
        source=path,
        warnings=warnings,
    )


def _check_pixdim(path: str, img: Any) -> None:
    """Refuse a zero or NaN voxel size on an axis longer than 1 (nibabel silently sets zeros to 1)."""
    with ImageOpener(path) as fobj:
        raw = type(img.header).from_fileobj(fobj, check=False)
    n_spatial = min(len(img.shape), 3)
    pixdim = np.asarray(raw["pixdim"][1 : 1 + n_spatial], dtype=np.float64)
    valid = np.isfinite(pixdim) & (pixdim != 0)
    if np.any(~valid & (np.asarray(img.shape[:n_spatial]) > 1)):
        raise InputError(f"voxel size (pixdim[1:4]) is zero or NaN: {pixdim.tolist()}", path)


def _gzipped_but_not_named_so(path: str) -> bool:
    """Whether `path` holds gzip data (its magic bytes) under a name that says uncompressed."""
    if path.lower().endswith((".gz", ".mgz")):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def _voxel_data(path: str, img: Any, kind: str, *, first_volume: bool, stream: bool) -> Any:
    """The voxel array: a read-only memmap, or (compressed file) the values as stored (native byte order)
    in memory or, with `stream`, StreamedVoxels; any of them wrapped in a ScaledProxy when the file has a
    slope or intercept.

    With `first_volume`, only the first 3D volume of a 4D (or higher) file (of a compressed one, only its
    bytes are decompressed).
    """
    proxy = img.dataobj
    first = (slice(None),) * 3 + (0,) * (len(proxy.shape) - 3)
    if path.lower().endswith((".gz", ".mgz")):
        stored = StreamedVoxels(path, proxy, kind)  # a 2D image's as (I, J, 1)
        if not stream:  # read whole now (gzip's checksum checked): damage is reported here, not in the viewer
            stored = stored[...]
    else:
        expected = int(proxy.offset) + int(np.prod(proxy.shape)) * proxy.dtype.itemsize
        size = os.path.getsize(path)
        if size < expected:
            raise InputError(f"the file is truncated: {size} bytes, the header needs {expected}", path)
        stored = proxy.get_unscaled()  # opened with mmap="r": a read-only memory map, nothing read yet
        if first_volume:
            stored = stored[first]
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    return stored if slope == 1.0 and inter == 0.0 else ScaledProxy(stored, slope, inter)


def write_volume(volume: Volume, path: str | os.PathLike) -> None:
    """Write `volume` as NIfTI-1 (.nii or .nii.gz) with its affine as sform and, unless the affine shears
    (which a qform cannot express), as qform too (code 1, mm).

    The file is written to a temporary name beside `path` and then moved into place, so a failure never
    leaves half a file. Refuses to overwrite the volume's own source file.
    """
    target = Path(path)
    name = target.name.lower()
    check_output(path, NIFTI_SUFFIXES, "a volume")
    if volume.source and target.exists() and Path(volume.source).exists() and os.path.samefile(
        target, volume.source
    ):
        raise InputError("refusing to overwrite the file this volume was read from", path)
    data = np.asarray(volume.data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    img = nib.Nifti1Image(data, volume.affine)
    img.set_sform(volume.affine, code=1)
    if shears(volume.affine):
        img.set_qform(None, code=0)  # a gantry tilt: the sform alone holds the geometry
    else:
        img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
    try:
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:  # a read-only folder: name the folder, not the temporary file
        raise InputError(f"cannot write into this folder ({exc.strerror or exc})", target.parent) from exc
    os.close(fd)
    try:
        img.to_filename(tmp)
        # mkstemp made it private: give it the mode of the file it replaces, or of any new file here
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else created_mode())
        os.replace(tmp, target)
    except OSError as exc:  # a full disk, a target that cannot be replaced
        raise InputError(f"cannot be written ({exc.strerror or exc})", path) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def shears(affine: np.ndarray) -> bool:
    """Whether the affine's voxel axes are not perpendicular (beyond rounding): a shear (gantry tilt)."""
    axes = np.asarray(affine, dtype=np.float64)[:3, :3]
    unit = axes / np.linalg.norm(axes, axis=0)
    cosines = unit.T @ unit - np.eye(3)
    return bool(np.abs(cosines).max() > SHEAR_COSINE)
