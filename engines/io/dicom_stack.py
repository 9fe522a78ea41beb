"""Stack DICOM image planes (files of a series, or frames of a multi-frame file) into one volume.

Planes are sorted along the slice normal (row direction x column direction) by the projection of
ImagePositionPatient, the way ITK/GDCM sort a series; RescaleSlope/Intercept are applied per plane.

Missing and unevenly spaced slices (a decision made for the radiologist reading the result):
- a gap that is a whole number of slice spacings (missing slices) is filled with blank slices (the
  lowest value in the series), so every real slice keeps its true position, and a warning names the gap;
- any other uneven spacing keeps the slices as they are with the mean spacing, and a warning gives the
  largest position error that causes;
- with ``allow_gaps=False`` either case raises InputError instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engines.errors import InputError
from engines.io.geometry import dicom_affine, unit_cosines

# Positions closer than this along the normal are "the same slice" (mm).
SAME_POSITION_MM = 1e-3

# Attributes that tell apart the volumes a series may hold at the same slice positions, in the order tried.
VOLUME_ATTRIBUTES = ("EchoNumbers", "TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime",
                     "DiffusionBValue")
# The same for the frames of an enhanced multi-frame file: (functional group, attribute), in the order tried.
FRAME_VOLUME_ATTRIBUTES = (
    ("MREchoSequence", "EffectiveEchoTime"),
    ("FrameContentSequence", "TemporalPositionIndex"),
    ("FrameContentSequence", "FrameAcquisitionNumber"),
    ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
    ("MRDiffusionSequence", "DiffusionBValue"),
    ("FrameContentSequence", "StackID"),
)


def first_volume(
    along: Sequence[float], values: dict[str, Sequence[float | None]]
) -> tuple[list[int], str | None]:
    """When images repeat slice positions (`along`: each one's position along the slice normal, mm), the
    indices of the first volume and a warning; else all indices and None.

    The first of `values` (attribute -> each image's number, None when absent) that splits the images into
    volumes does: the first volume (lowest value) has several images at distinct positions, every other
    distinct positions among the first's (a repeat stopped early covers fewer). When none does, all indices
    (the repeated positions are then refused by the stacking, which names them).
    """
    positions = _slice_positions(along)
    everything = list(range(len(along)))
    if len(set(positions)) == len(positions):
        return everything, None
    for keyword, numbers in values.items():
        if any(v is None for v in numbers):
            continue
        volumes: dict[float, list[int]] = defaultdict(list)
        for i, value in enumerate(numbers):
            volumes[value].append(i)
        first = min(volumes)
        whole = {positions[i] for i in volumes[first]}
        if len(volumes) > 1 and len(whole) == len(volumes[first]) > 1 and all(
                len({positions[i] for i in members}) == len(members) <= len(whole)
                and {positions[i] for i in members} <= whole for members in volumes.values()):
            listed = ", ".join(f"{v:g}" for v in sorted(volumes)[:8]) + (", ..." if len(volumes) > 8 else "")
            return volumes[first], (f"the series holds {len(volumes)} volumes at the same slice positions "
                                    f"({keyword} {listed}); showing {keyword} {first:g}")
    return everything, None


def _slice_positions(along: Sequence[float]) -> list[int]:
    """Each image's slice position as a number, images within SAME_POSITION_MM of the next one along the
    normal sharing one (the stacking's notion of one slice)."""
    along = np.asarray(along, dtype=np.float64)
    order = np.argsort(along, kind="stable")
    slices = np.empty(len(along), np.int64)
    slices[order] = np.concatenate([[0], np.cumsum(np.diff(along[order]) > SAME_POSITION_MM)])
    return slices.tolist()


@dataclass
class Plane:
    """One 2D image in patient space.

    position : ImagePositionPatient (3,), LPS mm, centre of the first transmitted pixel.
    orientation : ImageOrientationPatient (6,).
    pixel_spacing : PixelSpacing (between rows, between columns), mm.
    label : how to name this plane in a message (file name, or "frame 7").
    """

    position: np.ndarray
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slope: float = 1.0
    intercept: float = 0.0
    label: str = ""


@dataclass
class Stack:
    """A stacked volume: `data` (columns, rows, slices), `affine` voxel -> RAS+ mm, and what was found."""

    data: np.ndarray
    affine: np.ndarray
    warnings: list[str]
    inserted_slices: list[int]


def stack_planes(
    planes: Sequence[Plane],
    read_stored: Callable[[int], np.ndarray],
    *,
    path: str,
    single_slice_spacing: float = 1.0,
    allow_gaps: bool = True,
) -> Stack:
    """Sort, check, rescale and stack `planes`.

    Parameters
    ----------
    planes : the images, in any order; all the same size and orientation.
    read_stored : ``read_stored(i)`` -> stored values of ``planes[i]``, shape (rows, columns).
    path : the file or folder, for messages.
    single_slice_spacing : the third spacing when there is one plane (GDCM: SpacingBetweenSlices or 1 mm).
    allow_gaps : False to refuse missing or unevenly spaced slices.
    """
    first = planes[0]
    _check_consistent(planes, path)
    row_dir, col_dir = unit_cosines(first.orientation)
    normal = np.cross(row_dir, col_dir)
    along = np.array([float(np.dot(p.position, normal)) for p in planes])
    order = np.argsort(along, kind="stable")
    along = along[order]
    warnings: list[str] = []

    grid = np.zeros(len(planes), dtype=np.int64)  # slice index of each sorted plane in the volume
    slice_step = None
    if len(planes) == 1:
        spacing = float(single_slice_spacing)
    else:
        steps = np.diff(along)
        same = np.flatnonzero(steps < SAME_POSITION_MM)
        if same.size:
            k = int(same[0])
            raise InputError(
                f"images share a slice position ({along[k]:.2f} mm along the normal: "
                f"{planes[order[k]].label}, {planes[order[k + 1]].label}): a slice sent twice, or several "
                f"volumes (phases, echoes, repeats) that none of {', '.join(VOLUME_ATTRIBUTES)} splits into "
                "a first whole volume and others over its positions",
                path,
            )
        grid, spacing, gap_messages = _slice_grid(along, [planes[i].label for i in order],
                                                  allow_gaps=allow_gaps)
        if gap_messages:
            if not allow_gaps:
                raise InputError("; ".join(gap_messages), path)
            warnings.extend(gap_messages)
        slice_step, tilt_messages = _gantry_tilt(planes[order[0]].position, planes[order[-1]].position,
                                                 int(grid[-1]), normal)
        warnings.extend(tilt_messages)

    data = _rescaled_stack(planes, order, grid, read_stored)
    inserted = sorted(set(range(int(grid[-1]) + 1)) - set(grid.tolist()))
    affine = dicom_affine(planes[order[0]].position, first.orientation, first.pixel_spacing, spacing,
                          slice_step=slice_step)
    return Stack(data=data.transpose(2, 1, 0), affine=affine, warnings=warnings, inserted_slices=inserted)


def _check_consistent(planes: Sequence[Plane], path: str) -> None:
    first = planes[0]
    for plane in planes[1:]:
        if (plane.rows, plane.columns) != (first.rows, first.columns):
            raise InputError(f"images differ in size ({first.label}: {first.rows}x{first.columns}, "
                             f"{plane.label}: {plane.rows}x{plane.columns})", path)
        if not np.allclose(plane.orientation, first.orientation, atol=1e-3):
            raise InputError(f"images differ in orientation ({first.label}, {plane.label})", path)
        if not np.allclose(plane.pixel_spacing, first.pixel_spacing, atol=1e-4):
            raise InputError(f"images differ in pixel spacing ({first.label}, {plane.label})", path)


def _slice_grid(along: np.ndarray, labels: list[str], *,
                allow_gaps: bool = True) -> tuple[np.ndarray, float, list[str]]:
    """Volume slice index of each sorted plane, the slice spacing, and messages about gaps (saying what was
    done about them when `allow_gaps`).

    `along` (n,) are sorted positions along the normal (mm). Missing slices (steps that are whole multiples of
    the usual step) get room in the grid; other unevenness keeps one slice per plane. A step is even within
    1 % of the usual step or 0.02 mm, what writing positions to two decimals can change it by (0.625 mm slices
    then step by 0.62 or 0.63 mm; sqrt(3) x 0.005 mm per position when oblique), and never a quarter step.
    """
    steps = np.diff(along)
    nominal = float(np.median(steps))
    tol = min(max(0.02, 0.01 * nominal), 0.25 * nominal)
    multiples = np.maximum(np.rint(steps / nominal), 1).astype(np.int64)
    whole = np.abs(steps - multiples * nominal) <= tol * multiples
    n = len(along)
    messages = []
    # Missing slices fill a few gaps; more blanks than slices means the "usual" step is no slice spacing
    # (e.g. two volumes a few micrometres apart), and filling would make a huge, mostly empty grid.
    if np.all(whole) and int(multiples.sum()) + 1 <= 2 * n:
        grid = np.concatenate([[0], np.cumsum(multiples)])
        for k in np.flatnonzero(multiples > 1):
            missing = int(multiples[k] - 1)
            plural = "s" if missing > 1 else ""
            messages.append(
                f"{missing} missing slice{plural}: a gap of {steps[k]:.2f} mm "
                f"(usual spacing {nominal:.2f} mm) between the slices at {along[k]:.2f} and "
                f"{along[k + 1]:.2f} mm along the normal (images {k + 1} and {k + 2} of {n} by position: "
                f"{labels[k]}, {labels[k + 1]})"
                + (f"; blank slice{plural} inserted so the other slices keep their true positions"
                   if allow_gaps else "")
            )
        spacing = float((along[-1] - along[0]) / grid[-1])
        return grid, spacing, messages
    grid = np.arange(n, dtype=np.int64)
    spacing = float((along[-1] - along[0]) / (n - 1))
    error = float(np.max(np.abs(along - (along[0] + spacing * grid))))
    worst = int(np.argmax(np.abs(steps - nominal)))
    messages.append(
        f"uneven slice spacing: {steps[worst]:.2f} mm between the slices at {along[worst]:.2f} and "
        f"{along[worst + 1]:.2f} mm along the normal (images {worst + 1} and {worst + 2} of {n} by position: "
        f"{labels[worst]}, {labels[worst + 1]}; usual spacing {nominal:.2f} mm)"
        + (f"; shown with the mean spacing {spacing:.3f} mm, so slices may be up to {error:.2f} mm from "
           "their true positions" if allow_gaps else "")
    )
    return grid, spacing, messages


def _gantry_tilt(
    first: np.ndarray, last: np.ndarray, n_steps: int, normal: np.ndarray
) -> tuple[np.ndarray | None, list[str]]:
    """The LPS step between slices when it leaves the normal (gantry tilt), else None; and a warning.

    ITK keeps the step along the normal and so misplaces tilted slices; a sheared affine puts every
    voxel where the scanner says it is.
    """
    step = (np.asarray(last) - np.asarray(first)) / n_steps
    length = float(np.linalg.norm(step))
    if np.linalg.norm(step - np.dot(step, normal) * normal) <= 1e-3 * length:
        return None, []
    apart = abs(float(np.dot(step, normal)))
    angle = float(np.degrees(np.arccos(min(1.0, apart / length))))
    return step, [f"slices are sheared (gantry tilt of about {angle:.1f}°): the affine includes the shear, "
                  f"so every voxel is at its true position; the planes are {apart:.2f} mm apart along their "
                  f"normal, each slice's origin {length:.2f} mm from the last (the third spacing)"]


def _rescaled_stack(
    planes: Sequence[Plane], order: np.ndarray, grid: np.ndarray, read_stored: Callable[[int], np.ndarray]
) -> np.ndarray:
    """(slices, rows, columns) modality values; slices not in `grid` are filled with the lowest value."""
    first = planes[0]
    n_slices = int(grid[-1]) + 1
    stored = None
    for slot, index in zip(grid, order, strict=True):
        pixels = read_stored(int(index))
        if stored is None:
            stored = np.zeros((n_slices, first.rows, first.columns), dtype=pixels.dtype.newbyteorder("="))
        elif not np.can_cast(pixels.dtype, stored.dtype):  # e.g. uint16 after int16 slices: widen, not wrap
            stored = stored.astype(np.promote_types(stored.dtype, pixels.dtype))
        stored[slot] = pixels
    assert stored is not None
    real = np.zeros(n_slices, dtype=bool)
    real[grid] = True
    slopes = np.ones(n_slices)
    intercepts = np.zeros(n_slices)
    slopes[grid] = [planes[i].slope for i in order]
    intercepts[grid] = [planes[i].intercept for i in order]

    one_intercept = np.unique(intercepts[grid]).size == 1
    shift = float(intercepts[grid[0]])
    dtype = None
    if np.all(slopes[grid] == 1) and one_intercept and shift.is_integer() and stored.dtype.kind in "iu":
        low, high = int(stored[real].min()) + int(shift), int(stored[real].max()) + int(shift)
        dtype = next((t for t in (stored.dtype, np.int16, np.int32, np.int64) if _fits(t, low, high)), None)
    if dtype is not None:
        out = stored.astype(dtype, copy=dtype != stored.dtype)
        # Added in int64 and cast back: the result fits `dtype` by construction.
        np.add(out, np.int64(shift), out=out, casting="unsafe")
    else:
        out = stored.astype(np.float32)
        out *= slopes[:, None, None].astype(np.float32)
        out += intercepts[:, None, None].astype(np.float32)
    if not real.all():
        out[~real] = out[real].min()
    return out


def _fits(dtype: np.dtype | type, low: int, high: int) -> bool:
    info = np.iinfo(dtype)
    return info.min <= low and high <= info.max
