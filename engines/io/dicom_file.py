"""One DICOM file as a volume: a single slice, an enhanced multi-frame image, or an old-style multi-frame.

Enhanced multi-frame images (Enhanced CT/MR/...) carry each frame's position, orientation, pixel
spacing and rescale in the per-frame or shared functional groups; old-style multi-frames (RT Dose, NM)
carry one ImagePositionPatient and frame offsets (GridFrameOffsetVector) or SpacingBetweenSlices.
Frames are sorted in space like the files of a series (engines.io.dicom_stack).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from engines.errors import InputError
from engines.io.dicom_pixels import check_is_greyscale_image, decode_frames
from engines.io.dicom_stack import FRAME_VOLUME_ATTRIBUTES, Plane, first_volume, stack_planes
from engines.io.dicom_tags import (
    NO_GEOMETRY,
    describe,
    first_float,
    frame_count,
    has_geometry,
    plane_of,
    single_slice_spacing,
    window_of,
)
from engines.volume import Volume

# Functional group -> the attributes a plane needs from it.
_FUNCTIONAL_ATTRIBUTES = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SpacingBetweenSlices", "SliceThickness"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth"),
}


_VALUE_REPRESENTATIONS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT "
    b"UV".split()
)


def dicom_start(path: str) -> str | None:
    """How a DICOM file starts: "marker" (the 128-byte preamble and 'DICM'), "bare" (a dataset written without
    them, as some PACS exports and anonymisers do: its first element in group 0002 or 0008, little endian
    with a valid VR or, implicit, a length within the file, or big endian with a valid VR), or None when it
    is not DICOM."""
    try:
        with open(path, "rb") as fobj:
            head = fobj.read(132)
            size = os.fstat(fobj.fileno()).st_size
    except OSError:
        return None
    if head[128:132] == b"DICM":
        return "marker"
    if len(head) < 8:
        return None
    explicit = head[4:6] in _VALUE_REPRESENTATIONS
    if int.from_bytes(head[:2], "big") in (0x0002, 0x0008) and explicit:  # explicit VR big endian
        return "bare"
    if int.from_bytes(head[:2], "little") not in (0x0002, 0x0008):
        return None
    return "bare" if explicit or int.from_bytes(head[4:8], "little") <= size - 8 else None


def is_dicom_file(path: str) -> bool:
    """True when `path` is a DICOM file, with or without the preamble and 'DICM' marker."""
    return dicom_start(path) is not None


def read_dicom_dataset(path: str, *, stop_before_pixels: bool = False) -> Dataset:
    """pydicom's reading of `path` (a bare dataset too: see `dicom_start`), with InputError for a file that is
    not DICOM or is damaged."""
    try:
        return pydicom.dcmread(path, force=dicom_start(path) == "bare", stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise InputError("not a DICOM file (no 'DICM' marker after the 128-byte preamble)", path) from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"damaged DICOM file ({exc})", path) from exc


def read_dicom_file(path: str, *, allow_gaps: bool = True, source: str | None = None) -> Volume:
    """Read one DICOM file (`source`: the path to record, e.g. the folder it came from)."""
    ds = read_dicom_dataset(path)
    check_is_greyscale_image(ds, path)
    warnings: list[str] = []
    n_frames = frame_count(ds, path)
    frame_of = list(range(n_frames))  # the frame each plane shows
    if "PerFrameFunctionalGroupsSequence" in ds:
        if len(ds.PerFrameFunctionalGroupsSequence) < n_frames:
            raise InputError(f"{n_frames} frames but only {len(ds.PerFrameFunctionalGroupsSequence)} "
                             "per-frame functional groups", path)
        geometries = [functional_groups(ds, i) for i in range(n_frames)]
        planes = [plane_of(ds, f"frame {i + 1}", path, geometry=g) for i, g in enumerate(geometries)]
        window = window_of(geometries[0]) or window_of(ds)
        spacing_hint = single_slice_spacing(geometries[0])
        located = all(has_geometry(g) for g in geometries)
        if located:  # several volumes (echoes, phases) in one file: the first, as a series of files gives
            frame_of, note = _first_volume_frames(ds, planes)
            planes = [planes[i] for i in frame_of]
            warnings += [note] if note else []
    else:
        planes = _old_style_planes(ds, path, n_frames, warnings)
        window = window_of(ds)
        spacing_hint = single_slice_spacing(ds)
        located = has_geometry(ds)
    if not located:
        warnings.append(NO_GEOMETRY)

    frames = decode_frames(ds, path)
    if frames.shape[0] != n_frames:
        raise InputError(f"the file describes {n_frames} frames but holds {frames.shape[0]}", path)
    stack = stack_planes(planes, lambda i: frames[frame_of[i]], path=path, single_slice_spacing=spacing_hint,
                         allow_gaps=allow_gaps)
    meta: dict[str, Any] = {"format": "DICOM", "frames": len(planes), **describe(ds)}
    if stack.inserted_slices:
        meta["inserted_slices"] = stack.inserted_slices
    if ds.get("Modality") == "RTDOSE":
        meta["units"] = str(ds.get("DoseUnits", "GY"))
    return Volume(
        data=stack.data,
        affine=stack.affine,
        modality=str(ds.Modality) if ds.get("Modality") else None,
        window=window,
        meta=meta,
        source=source or path,
        warnings=warnings + stack.warnings,
    )


def functional_groups(ds: Dataset, frame: int) -> Dataset:
    """The plane attributes of enhanced multi-frame `frame` (0-based): per-frame groups over shared ones."""
    shared = ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else Dataset()
    per_frame = ds.PerFrameFunctionalGroupsSequence[frame]
    out = Dataset()
    for sequence, keywords in _FUNCTIONAL_ATTRIBUTES.items():
        group = per_frame.get(sequence) or shared.get(sequence)
        if not group:
            continue
        for keyword in keywords:
            if keyword in group[0]:
                setattr(out, keyword, group[0][keyword].value)
    return out


def _first_volume_frames(ds: Dataset, planes: list[Plane]) -> tuple[list[int], str | None]:
    """The frames of an enhanced multi-frame file's first volume and a warning, when its frames repeat
    slice positions and one of FRAME_VOLUME_ATTRIBUTES tells the volumes apart (see `first_volume`)."""
    row, col = (np.asarray(planes[0].orientation[:3]), np.asarray(planes[0].orientation[3:]))
    normal = np.cross(row, col)
    along = [float(np.dot(plane.position, normal)) for plane in planes]
    shared = ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else Dataset()

    def number(frame: int, sequence: str, keyword: str) -> float | None:
        group = ds.PerFrameFunctionalGroupsSequence[frame].get(sequence) or shared.get(sequence)
        try:
            return first_float(group[0].get(keyword)) if group else None
        except (TypeError, ValueError):
            return None

    return first_volume(along, {keyword: [number(i, sequence, keyword) for i in range(len(planes))]
                                for sequence, keyword in FRAME_VOLUME_ATTRIBUTES})


def _old_style_planes(ds: Dataset, path: str, n_frames: int, warnings: list[str]) -> list[Plane]:
    """Planes of a single-frame or old-style multi-frame file (one position + offsets along the normal)."""
    base = plane_of(ds, "frame 1" if n_frames > 1 else "the image", path)
    if ds.get("Modality") == "RTDOSE":
        base.slope = first_float(ds.get("DoseGridScaling")) or 1.0
    if n_frames == 1:
        return [base]
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) == n_frames:
        # Relative to ImagePositionPatient when the first is 0; otherwise absolute, with the first at the IPP.
        distances = np.array([float(v) for v in offsets]) - float(offsets[0])
    else:
        step = first_float(ds.get("SpacingBetweenSlices"))
        if not step:
            step = 1.0
            warnings.append(f"{n_frames} frames without positions: stacked 1 mm apart")
        distances = np.arange(n_frames) * step
    row, col = np.asarray(base.orientation[:3]), np.asarray(base.orientation[3:])
    normal = np.cross(row, col) / np.linalg.norm(np.cross(row, col))
    return [replace(base, position=base.position + d * normal, label=f"frame {i + 1}")
            for i, d in enumerate(distances)]
