"""Reading the DICOM attributes a volume needs: plane geometry, rescale, window, descriptive metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from engines.errors import InputError
from engines.io.dicom_stack import Plane

IDENTITY_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
NO_GEOMETRY = ("the file carries no patient position/orientation: shown at the origin with identity "
               "orientation (distances within the image are still in mm when PixelSpacing is given)")


def first_float(value: Any) -> float | None:
    """The first number of a (possibly multi-valued) DICOM attribute, or None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list | tuple):
        if len(value) == 0:
            return None
        value = value[0]
    return float(value)


def frame_count(ds: Dataset, path: str) -> int:
    """NumberOfFrames (1 when absent or 0, as pydicom reads it); InputError naming the file when it is not a
    whole number >= 0."""
    value = ds.get("NumberOfFrames")
    try:
        count = 1 if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        raise InputError(f"NumberOfFrames is {str(value)!r}, not a whole number", path) from None
    if count < 0:
        raise InputError(f"NumberOfFrames is {count}", path)
    return max(count, 1)


def window_of(ds: Dataset) -> tuple[float, float] | None:
    """(centre, width) from WindowCenter/WindowWidth (first values), or None (also when unreadable: the
    window is a display hint, not a reason to refuse the image)."""
    try:
        centre, width = first_float(ds.get("WindowCenter")), first_float(ds.get("WindowWidth"))
    except (TypeError, ValueError):
        return None
    if centre is None or width is None or width <= 0:
        return None
    return centre, width


def has_geometry(ds: Dataset) -> bool:
    """True when `ds` carries ImagePositionPatient and ImageOrientationPatient."""
    return bool(ds.get("ImagePositionPatient")) and bool(ds.get("ImageOrientationPatient"))


def plane_of(ds: Dataset, label: str, path: str, *, geometry: Dataset | None = None) -> Plane:
    """The Plane of a single-frame image `ds` (or of `geometry`, a dataset holding the plane attributes).

    Without ImagePositionPatient/ImageOrientationPatient the plane sits at the origin with identity
    orientation (as GDCM does); the caller warns about it.
    """
    source = ds if geometry is None else geometry
    position = source.get("ImagePositionPatient") or [0.0, 0.0, 0.0]
    orientation = source.get("ImageOrientationPatient") or IDENTITY_ORIENTATION
    spacing = source.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [1.0, 1.0]
    try:
        plane = Plane(
            position=np.array([float(v) for v in position], dtype=np.float64),
            orientation=tuple(float(v) for v in orientation),
            pixel_spacing=(float(spacing[0]), float(spacing[1])),
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            slope=first_float(source.get("RescaleSlope")) or 1.0,
            intercept=first_float(source.get("RescaleIntercept")) or 0.0,
            label=label,
        )
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise InputError(f"{label}: unreadable image geometry or rescale attributes ({exc})", path) from exc
    if len(plane.position) != 3 or len(plane.orientation) != 6 or min(plane.pixel_spacing) <= 0:
        raise InputError(f"{label}: malformed ImagePositionPatient, ImageOrientationPatient or "
                         "PixelSpacing", path)
    row, col = np.asarray(plane.orientation[:3]), np.asarray(plane.orientation[3:])
    if np.linalg.norm(np.cross(row, col)) < 1e-3:
        raise InputError(f"{label}: ImageOrientationPatient rows and columns are parallel", path)
    return plane


def single_slice_spacing(ds: Dataset) -> float:
    """Third-axis spacing of a lone slice: SpacingBetweenSlices, else 1 mm (GDCM/ITK's convention)."""
    value = first_float(ds.get("SpacingBetweenSlices"))
    return value if value and value > 0 else 1.0


def describe(ds: Dataset) -> dict[str, Any]:
    """Descriptive metadata for Volume.meta (only what the file has)."""
    keywords = {
        "series_uid": "SeriesInstanceUID",
        "series_description": "SeriesDescription",
        "study_description": "StudyDescription",
        "patient_position": "PatientPosition",
        "slice_thickness": "SliceThickness",
        "manufacturer": "Manufacturer",
        "sop_class": "SOPClassUID",
    }
    meta: dict[str, Any] = {}
    for key, keyword in keywords.items():
        value = ds.get(keyword)
        if value in (None, ""):
            continue
        if keyword == "SliceThickness":
            meta[key] = float(value)
        elif keyword == "SOPClassUID":
            meta[key] = value.name
        else:
            meta[key] = str(value)
    return meta
