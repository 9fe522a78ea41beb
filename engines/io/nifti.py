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
from engines.io.lazy_arrays import LazyArray, StreamedVoxels
from engines.volume import PLANAR, Volume

NO_ORIENTATION = ("the header holds no orientation (qform_code and sform_code are 0): placed by its voxel "
                  "sizes alone, centred on the origin, as nibabel does; left and right may be swapped")
# Voxel axes further from perpendicular than this (the cosine of the angle between two) shear: a qform
# (rotation, zooms, translation) cannot hold them, and readers that prefer it (ITK) would misplace voxels.
# Direction cosines written to 6 decimals stay far below it; a gantry tilt of 1 degree is 0.017.
SHEAR_COSINE = 1e-4
# NIfTI spatial units -> millimetres (ITK scales the same way).
_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}

# What nibabel raises for damaged files: a bad header (codes, dimensions), short or odd data, bad gzip.
_READ_ERRORS = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError,
                ValueError, KeyError, TypeError, OverflowError, zlib.error, nib.freesurfer.mghformat.MGHError)


class ScaledProxy(LazyArray):
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
        if meta["qform_code"] == meta["sform_code"] == 0:
            warnings.append(NO_ORIENTATION)
    return Volume(
        data=data,
        affine=check_affine(affine, path),
        meta=meta,
        source=path,
        warnings=warnings,
    )


def _check_pixdim(path: str, img: Any) -> None:
    """Refuse a zero or NaN voxel size on an axis longer than 1 (nibabel silently sets zeros to 1), unless
    an sform places the voxels (nibabel's affine then does not use pixdim)."""
    with ImageOpener(path) as fobj:
        raw = type(img.header).from_fileobj(fobj, check=False)
    if int(raw["sform_code"]) > 0:
        return
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
    bytes are kept; the rest are decompressed once, for the checksum at the end).
    """
    proxy = img.dataobj
    first = (slice(None),) * 3 + (0,) * (len(proxy.shape) - 3)
    if path.lower().endswith((".gz", ".mgz")):
        stored = StreamedVoxels(path, kind, lambda: ImageOpener(path, "rb"), proxy.offset, proxy.dtype,
                                proxy.shape)  # a 2D image's as (I, J, 1)
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
