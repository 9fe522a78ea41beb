"""Decode the stored pixel values of one DICOM file: pydicom first, GDCM (through SimpleITK) as fallback.

Values returned are the *stored* values (no RescaleSlope/Intercept); the caller applies the modality
rescale once, whichever decoder ran.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from engines.errors import InputError
from engines.io.dicom_tags import frame_count

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_RESCALE_KEYWORDS = ("RescaleSlope", "RescaleIntercept", "RescaleType")


def sop_class_name(ds: Dataset) -> str:
    """The SOP class's name ("CT Image Storage"), or "unknown SOP class"."""
    uid = ds.get("SOPClassUID")
    return uid.name if uid is not None else "unknown SOP class"


def check_is_greyscale_image(ds: Dataset, path: str) -> None:
    """Raise InputError unless `ds` holds greyscale pixel data."""
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise InputError(f"this DICOM file holds no image (it is a {sop_class_name(ds)})", path)
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples != 1:
        raise InputError(
            f"colour DICOM image ({ds.get('PhotometricInterpretation', '?')}, {samples} samples per pixel); "
            "Tessera reads greyscale volumes",
            path,
        )
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR":
        raise InputError("colour DICOM image (PALETTE COLOR: its values index a colour table, they are not "
                         "intensities); Tessera reads greyscale volumes", path)


def decode_frames(ds: Dataset, path: str) -> np.ndarray:
    """Stored pixel values of every frame, shape (frames, rows, columns), in the file's frame order."""
    check_is_greyscale_image(ds, path)
    _check_native_length(ds, path)
    rows, cols = int(ds.Rows), int(ds.Columns)
    try:
        pixels = ds.pixel_array
    except Exception as pydicom_error:  # pydicom raises several types for "no decoder"/corrupt data
        pixels = _decode_with_gdcm(ds, path, pydicom_error)
    return np.asarray(pixels).reshape(-1, rows, cols)


def _check_native_length(ds: Dataset, path: str) -> None:
    """Refuse uncompressed pixel data shorter than Rows x Columns x frames needs: decoders may fill the
    missing pixels with whatever memory held (GDCM does), and the scan would look whole."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if (syntax is not None and syntax.is_compressed) or "PixelData" not in ds:
        return
    bits = int(ds.get("BitsAllocated") or 0)
    frames = frame_count(ds, path)
    pixels = int(ds.Rows) * int(ds.Columns) * frames
    needed = (pixels * bits + 7) // 8
    found = len(ds.PixelData or b"")
    if found < needed:
        raise InputError(f"the pixel data is truncated: {found} bytes, {ds.Rows} x {ds.Columns} x "
                         f"{frames} pixels of {bits} bits need {needed}", path)


def _decode_with_gdcm(ds: Dataset, path: str, pydicom_error: Exception) -> np.ndarray:
    """Decode with GDCM from a temporary copy whose rescale tags are removed, so values stay stored values."""
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    stripped = copy.deepcopy(ds)
    for keyword in _RESCALE_KEYWORDS:
        if keyword in stripped:
            delattr(stripped, keyword)
    for group_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in stripped.get(group_keyword, []):
            if "PixelValueTransformationSequence" in item:
                del item.PixelValueTransformationSequence
    import SimpleITK as sitk  # only for files pydicom cannot decode; it costs ~95 MiB of memory

    from engines.io.itk_formats import itk_message

    try:
        with tempfile.TemporaryDirectory(prefix="tessera-dicom-") as tmp:
            copy_path = Path(tmp) / "frame.dcm"
            pydicom.dcmwrite(copy_path, stripped)
            image = sitk.ReadImage(str(copy_path), imageIO="GDCMImageIO")
            return sitk.GetArrayFromImage(image)
    except (RuntimeError, OSError, ValueError) as gdcm_error:
        if syntax is not None and syntax.is_compressed:
            raise InputError(
                f"its pixel data are compressed as {syntax.name} ({syntax}), which neither pydicom's "
                "installed decoders nor GDCM can decode; install pylibjpeg with its plugins (or "
                "python-gdcm), or decompress the file first (e.g. `gdcmconv --raw`)",
                path,
            ) from gdcm_error
        raise InputError(
            f"its pixel data cannot be read (pydicom: {pydicom_error}; GDCM: {itk_message(gdcm_error)})", path
        ) from gdcm_error
