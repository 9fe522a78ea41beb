"""DICOM folders: find the series in a folder (recursively) and read one as a volume.

Files are grouped by SeriesInstanceUID; the largest series is read unless one is named. Within a
series, images of another orientation or size (e.g. localizers sharing the UID) are left out with a
warning; a series holding several volumes at the same slice positions (echoes, phases, repeats) gives its
first, told apart by the attribute that separates them, with a warning (as a 4D NIfTI gives its first
volume); the rest are stacked by engines.io.dicom_stack (sorting, rescale, gap handling).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from engines.errors import InputError
from engines.io.dicom_file import dicom_start, read_dicom_dataset, read_dicom_file
from engines.io.dicom_pixels import decode_frames
from engines.io.dicom_stack import VOLUME_ATTRIBUTES, first_volume, stack_planes
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


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One series in a folder: its UID, description, modality, number of slices (frames) and files."""

    uid: str
    description: str
    modality: str | None
    slices: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class _Image:
    path: str
    header: Dataset

    @property
    def frames(self) -> int:
        """Frames of the file (1 when its NumberOfFrames is unreadable: reading it then says why, and a
        folder's other series stay listed and readable)."""
        try:
            return frame_count(self.header, self.path)
        except InputError:
            return 1

    @property
    def multiframe(self) -> bool:
        return self.frames > 1 or "PerFrameFunctionalGroupsSequence" in self.header


@dataclass
class _Scan:
    """What a folder holds: image headers by SeriesInstanceUID, how many files were looked at, the files
    that begin as DICOM files do but cannot be read (damaged: a series may be missing a slice), and images
    without a SeriesInstanceUID (no series to put them in)."""

    series: dict[str, list[_Image]]
    seen: int
    damaged: list[str]
    unplaced: list[str]

    def notes(self, folder: str) -> list[str]:
        """Warnings naming the damaged and the unplaced files (the first five of each)."""
        notes = []
        for paths, what in ((self.damaged, ("cannot be read (damaged)",) * 2),
                            (self.unplaced, ("carries no SeriesInstanceUID", "carry no SeriesInstanceUID"))):
            if paths:
                names = ", ".join(str(Path(path).relative_to(folder)) for path in paths[:5])
                more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
                several = len(paths) > 1
                notes.append(f"{len(paths)} DICOM file{'s' if several else ''} of this folder "
                             f"{what[several]} and {'are' if several else 'is'} left out: {names}{more}; a "
                             f"series may lack the slice{'s they hold' if several else ' it holds'}")
        return notes


def _scan(folder: str) -> _Scan:
    """Look at every file under `folder` (DICOMDIR aside) for image headers."""
    series: dict[str, list[_Image]] = defaultdict(list)
    seen, damaged, unplaced = 0, [], []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.upper() == "DICOMDIR":
                continue
            seen += 1
            path = os.path.join(root, name)
            try:
                header = read_dicom_dataset(path, stop_before_pixels=True)
            except Exception:  # anything pydicom cannot parse is not a DICOM image we could use
                if dicom_start(path) is not None:  # but if it begins as one, it is a damaged one
                    damaged.append(path)
                continue
            if "Rows" in header and header.get("SeriesInstanceUID"):
                series[str(header.SeriesInstanceUID)].append(_Image(path, header))
            elif "Rows" in header:
                unplaced.append(path)
            elif _image_class(header):  # pydicom reads a file cut short as far as it goes, without a word
                damaged.append(path)
    return _Scan(dict(series), seen, damaged, unplaced)


def _image_class(header: Dataset) -> bool:
    """Whether the file says it holds an image (its SOP class, or its file meta's, is an image storage
    class); one without Rows then is cut short or damaged."""
    meta = getattr(header, "file_meta", None)
    sop_class = header.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    return sop_class is not None and UID(str(sop_class)).name.endswith("Image Storage")


def _describe_series(uid: str, images: list[_Image]) -> DicomSeriesInfo:
    header = images[0].header
    return DicomSeriesInfo(
        uid=uid,
        description=str(header.get("SeriesDescription", "") or ""),
        modality=str(header.Modality) if header.get("Modality") else None,
        slices=sum(image.frames for image in images),
        files=tuple(image.path for image in images),
    )


def _sorted_infos(series: dict[str, list[_Image]]) -> list[DicomSeriesInfo]:
    infos = [_describe_series(uid, images) for uid, images in series.items()]
    return sorted(infos, key=lambda info: (-info.slices, info.description, info.uid))


def list_dicom_series(folder: str | os.PathLike) -> list[DicomSeriesInfo]:
    """The image series under `folder` (searched recursively), largest first.

    Raises InputError if `folder` is not a folder; returns [] when it holds no DICOM images.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputError("not a folder", folder)
    return _sorted_infos(_scan(folder).series)


def read_dicom_series(
    folder: str, *, series_uid: str | None = None, allow_gaps: bool = True
) -> Volume:
    """Read one series of the DICOM folder `folder` (the largest, or `series_uid`) as a Volume.

    Data axes are (column, row, slice) like ITK's (x, y, z); slices ascend along the slice normal.
    """
    scan = _scan(folder)
    series, notes = scan.series, scan.notes(folder)
    if not series:
        raise InputError(f"no DICOM images in this folder ({scan.seen} file{'s' if scan.seen != 1 else ''} "
                         f"looked at){''.join('; ' + note for note in notes)}", folder)
    infos = _sorted_infos(series)
    warnings: list[str] = notes
    if series_uid is None:
        # The largest greyscale series: a larger one of colour screenshots or reports is not the scan.
        chosen = next((info for info in infos if all(int(image.header.get("SamplesPerPixel", 1)) == 1
                                                     for image in series[info.uid])), infos[0])
        if len(infos) > 1:
            largest = "largest" if chosen is infos[0] else "largest greyscale"
            warnings.append(
                f"the folder holds {len(infos)} series; showing the {largest}, {_named(chosen)} "
                f"({chosen.modality}, {chosen.slices} images, UID {chosen.uid}); "
                "choose another in the Open dock's Open DICOM folder… (on the command line: --series UID)"
            )
    else:
        matches = [info for info in infos if info.uid == series_uid.strip()]
        if not matches:
            listing = ", ".join(f"{info.uid} ({_named(info)}, {info.slices} images)" for info in infos)
            raise InputError(f"no series with UID {series_uid} here; the folder holds: {listing}", folder)
        chosen = matches[0]
    images = series[chosen.uid]

    if any(image.multiframe for image in images):
        if len(images) > 1:
            raise InputError(f"series {chosen.uid} mixes {len(images)} files including multi-frame ones; "
                             "open one file at a time", folder)
        volume = read_dicom_file(images[0].path, allow_gaps=allow_gaps, source=folder)
        volume.warnings[:0] = warnings
        return volume

    images, dropped = _main_stack(images)
    if dropped:
        warnings.append(f"{dropped} image{'s' if dropped > 1 else ''} of this series with another "
                        "orientation or size (e.g. localizers) left out")
    images, note = _first_volume(images)
    warnings += [note] if note else []
    if not all(has_geometry(image.header) for image in images):
        if len(images) == 1:
            warnings.append(NO_GEOMETRY)
        else:
            raise InputError("the images carry no ImagePositionPatient/ImageOrientationPatient, so they "
                             "cannot be placed in space", folder)
    labels = [str(Path(image.path).relative_to(folder)) for image in images]
    planes = [plane_of(image.header, label, folder) for image, label in zip(images, labels, strict=True)]

    def read_stored(i: int) -> np.ndarray:
        path = images[i].path
        return decode_frames(read_dicom_dataset(path), path)[0]

    first = images[0].header
    stack = stack_planes(planes, read_stored, path=folder, single_slice_spacing=single_slice_spacing(first),
                         allow_gaps=allow_gaps)
    meta = {"format": "DICOM series", "files": len(images), **describe(first)}
    if stack.inserted_slices:
        meta["inserted_slices"] = stack.inserted_slices
    return Volume(
        data=stack.data,
        affine=stack.affine,
        modality=chosen.modality,
        window=window_of(first),
        meta=meta,
        source=folder,
        warnings=warnings + stack.warnings,
    )


def _named(info: DicomSeriesInfo) -> str:
    """The series' description in quotes, or "no description"."""
    return f"'{info.description}'" if info.description.strip() else "no description"


def _main_stack(images: list[_Image]) -> tuple[list[_Image], int]:
    """The largest group of images of one size whose orientations agree within 1e-3 (the tolerance the
    stacking checks; rounding would split values either side of a boundary), and how many were left out."""
    groups: list[tuple[tuple[int, int], np.ndarray, list[_Image]]] = []
    for image in images:
        size = (int(image.header.Rows), int(image.header.Columns))
        orientation = np.array([float(v) for v in image.header.get("ImageOrientationPatient") or ()])
        for group_size, reference, members in groups:
            if group_size == size and reference.shape == orientation.shape and np.allclose(
                    orientation, reference, rtol=0, atol=1e-3):
                members.append(image)
                break
        else:
            groups.append((size, orientation, [image]))
    kept = max((members for _, _, members in groups), key=len)
    return kept, len(images) - len(kept)


def _first_volume(images: list[_Image]) -> tuple[list[_Image], str | None]:
    """The images of the series' first volume and a warning, when they repeat slice positions and one of
    VOLUME_ATTRIBUTES tells the volumes apart (see `first_volume`); else `images` and None."""
    if not all(has_geometry(image.header) for image in images):
        return images, None
    orientation = [float(v) for v in images[0].header.ImageOrientationPatient]
    normal = np.cross(orientation[:3], orientation[3:])
    along = [float(np.dot([float(v) for v in image.header.ImagePositionPatient], normal)) for image in images]
    keep, note = first_volume(along, {keyword: [_number(image.header.get(keyword)) for image in images]
                                      for keyword in VOLUME_ATTRIBUTES})
    return [images[i] for i in keep], note


def _number(value: object) -> float | None:
    """The first number of a DICOM attribute's value, or None when absent or not a number."""
    try:
        return first_float(value)
    except (TypeError, ValueError):
        return None
