"""`read_volume`: decide what a path is (by extension, or DICOM's marker) and hand it to its reader."""

from __future__ import annotations

import os

from engines.errors import InputError
from engines.io.dicom_file import is_dicom_file, read_dicom_file
from engines.io.dicom_series import read_dicom_series
from engines.io.nifti import read_nibabel_volume
from engines.volume import Volume

# Extension -> format name. A folder is read as a DICOM series.
VOLUME_EXTENSIONS: dict[str, str] = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".mgz": "MGH",
    ".mgh": "MGH",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
    ".dcm": "DICOM",
    ".dicom": "DICOM",
    ".ima": "DICOM",
}


def supported_formats() -> str:
    """A one-line list of what read_volume reads, for messages and --help."""
    return ", ".join(VOLUME_EXTENSIONS) + ", a DICOM folder, or a DICOM file without extension"


def volume_extension(path: str) -> str:
    """The (lower-case) extension of `path` as VOLUME_EXTENSIONS spells it ('.nii.gz' counts as one)."""
    name = os.path.basename(path).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(name)[1]


def read_volume(
    path: str | os.PathLike, *, series_uid: str | None = None, allow_gaps: bool = True, stream: bool = False
) -> Volume:
    """Read a 3D medical image as a Volume (DESIGN §2): data in the file's voxel order, affine to RAS+ mm.

    Parameters
    ----------
    path : a NIfTI (.nii, .nii.gz), MGH (.mgh, .mgz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or
        DICOM file, or a folder of DICOM files (a series).
    series_uid : for a DICOM folder, the SeriesInstanceUID to read (default: the largest series).
    allow_gaps : for DICOM, False refuses a series with missing or unevenly spaced slices; True (default)
        reads it, fills whole missing slices with blank ones so the rest keep their true positions, and
        says so in ``volume.warnings``.
    stream : for a compressed NIfTI or MGZ file, a gzip NRRD or a zlib MetaImage, decompress the voxels as
        they are indexed (for one pass in file order over a volume too large to hold; damage is found when
        reached) instead of now.

    Returns
    -------
    Volume
        `data` is memory-mapped (read-only) for uncompressed NIfTI/MGH/NRRD/MetaImage and lazy for
        scaled NIfTI; compressed files (but those `stream` names, with it) and DICOM are read into memory.
        CT values are HU.

    Raises
    ------
    InputError
        For a missing path, an unsupported or damaged file, or a folder without DICOM images.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("no such file or folder", path)
    if os.path.isdir(path):
        return read_dicom_series(path, series_uid=series_uid, allow_gaps=allow_gaps)
    if series_uid is not None:
        raise InputError("a series UID applies to a DICOM folder, not to a single file", path)
    kind = VOLUME_EXTENSIONS.get(volume_extension(path))
    if kind is None and is_dicom_file(path):
        kind = "DICOM"
    if kind is None:
        extension = volume_extension(path) or "(no extension)"
        raise InputError(f"unsupported file type {extension}; Tessera reads {supported_formats()}", path)
    if kind in ("NIfTI", "MGH"):
        return read_nibabel_volume(path, kind=kind, stream=stream)
    if kind in ("NRRD", "MetaImage"):
        from engines.io.itk_formats import read_itk_volume  # SimpleITK costs ~95 MiB: load it when needed

        return read_itk_volume(path, kind=kind, stream=stream)
    return read_dicom_file(path, allow_gaps=allow_gaps)
