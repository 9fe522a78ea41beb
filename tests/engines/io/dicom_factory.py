"""Write small DICOM series and multi-frame files with known geometry, for the reader's tests.

The factory knows the truth (where every voxel is, what its value is in HU), so the tests can compare
the reader against it as well as against SimpleITK. Values are given in HU (modality values); the
factory stores ``round((hu - intercept) / slope)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RTStructureSetStorage,
    generate_uid,
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# An oblique orientation: rows/columns rotated about two axes (unit, orthogonal).
OBLIQUE_IOP = (
    0.9396926, 0.3420201, 0.0,
    -0.3213938, 0.8830222, 0.3420201,
)


@dataclass
class SeriesSpec:
    """What to write. `values` has axes (column, row, slice) like ITK's index (x, y, z), in HU."""

    values: np.ndarray
    pixel_spacing: tuple[float, float] = (0.8, 0.7)  # (between rows, between columns), DICOM order
    slice_spacing: float = 2.5
    origin_lps: tuple[float, float, float] = (-40.0, -30.0, 12.0)
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    slope: float = 1.0
    intercept: float = -1024.0
    modality: str = "CT"
    series_uid: str = field(default_factory=generate_uid)
    description: str = "test series"
    window: tuple[float, float] | None = (40.0, 400.0)
    unsigned: bool = True  # store as uint16 (PixelRepresentation 0), as many CT scanners do

    @property
    def normal(self) -> np.ndarray:
        row, col = np.asarray(self.iop[:3]), np.asarray(self.iop[3:])
        return np.cross(row, col)

    def position(self, k: int) -> np.ndarray:
        """ImagePositionPatient (LPS mm) of slice k."""
        return np.asarray(self.origin_lps) + k * self.slice_spacing * self.normal

    def affine_ras(self) -> np.ndarray:
        """The voxel (column, row, slice) -> RAS mm affine this series should read as."""
        lps = np.eye(4)
        lps[:3, 0] = np.asarray(self.iop[:3]) * self.pixel_spacing[1]
        lps[:3, 1] = np.asarray(self.iop[3:]) * self.pixel_spacing[0]
        lps[:3, 2] = self.normal * self.slice_spacing
        lps[:3, 3] = self.origin_lps
        return LPS_TO_RAS @ lps

    def stored(self) -> np.ndarray:
        """Stored values (column, row, slice) as they go into PixelData."""
        raw = np.round((self.values - self.intercept) / self.slope)
        dtype = np.uint16 if self.unsigned else np.int16
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise ValueError("values do not fit the stored type; change intercept/slope")
        return raw.astype(dtype)

    def expected(self) -> np.ndarray:
        """The modality values (HU for CT) a reader should return, (column, row, slice), float64."""
        return self.stored() * self.slope + self.intercept


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _image_pixel_module(ds: Dataset, rows: int, cols: int, unsigned: bool) -> None:
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0 if unsigned else 1


def _common(ds: Dataset, spec: SeriesSpec, study_uid: str, frame_uid: str) -> None:
    ds.PatientName, ds.PatientID = "Test^Phantom", "TESSERA-TEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, spec.series_uid, frame_uid
    ds.Modality = spec.modality
    ds.SeriesDescription = spec.description
    ds.SeriesNumber = 1
    ds.PatientPosition = "HFS"


def write_series(
    folder: str | Path,
    spec: SeriesSpec,
    *,
    skip: tuple[int, ...] = (),
    positions_mm: list[float] | None = None,
    shuffle_seed: int | None = 0,
    prefix: str = "IM",
    tilt_degrees: float = 0.0,
) -> list[Path]:
    """Write one single-frame file per slice of `spec` into `folder`.

    Parameters
    ----------
    skip : slice indices not written (a missing slice).
    positions_mm : if given, the distance of each slice from `origin_lps` along the normal (uneven spacing).
    shuffle_seed : file names are assigned in a shuffled order (None keeps slice order), so a reader that
        sorts by file name or InstanceNumber gets it wrong.
    tilt_degrees : gantry tilt: each slice's position also moves along the column direction by
        ``spacing * tan(tilt)`` per slice, as a tilted CT gantry writes it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored = spec.stored()
    n = stored.shape[2]
    order = [k for k in range(n) if k not in skip]
    names = list(range(len(order)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(names)
    study_uid, frame_uid = generate_uid(), generate_uid()
    sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
    paths = []
    for name, k in zip(names, order, strict=True):
        sop_instance = generate_uid()
        ds = Dataset()
        ds.file_meta = _file_meta(sop_class, sop_instance)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
        _common(ds, spec, study_uid, frame_uid)
        ds.InstanceNumber = name + 1  # deliberately not the slice order
        pos = (
            spec.position(k)
            if positions_mm is None
            else np.asarray(spec.origin_lps) + positions_mm[k] * spec.normal
        )
        pos = pos + k * spec.slice_spacing * np.tan(np.radians(tilt_degrees)) * np.asarray(spec.iop[3:])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.7f}" for v in spec.iop]
        ds.PixelSpacing = [f"{v:.6f}" for v in spec.pixel_spacing]
        ds.SliceThickness = f"{spec.slice_spacing:.6f}"
        ds.RescaleIntercept = f"{spec.intercept:g}"
        ds.RescaleSlope = f"{spec.slope:g}"
        if spec.modality == "CT":
            ds.RescaleType = "HU"
        if spec.window is not None:
            ds.WindowCenter, ds.WindowWidth = f"{spec.window[0]:g}", f"{spec.window[1]:g}"
        _image_pixel_module(ds, stored.shape[1], stored.shape[0], spec.unsigned)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # rows x columns
        path = folder / f"{prefix}{name:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(path: str | Path, spec: SeriesSpec, *, frame_order: list[int] | None = None) -> Path:
    """Write `spec` as one Enhanced CT multi-frame file; frames in `frame_order` (default slice order)."""
    path = Path(path)
    stored = spec.stored()
    n = stored.shape[2]
    frame_order = list(range(n)) if frame_order is None else frame_order
    sop_instance = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(EnhancedCTImageStorage, sop_instance)
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedCTImageStorage, sop_instance
    _common(ds, spec, generate_uid(), generate_uid())
    ds.NumberOfFrames = len(frame_order)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]

    measures = Dataset()
    measures.PixelSpacing = [f"{v:.6f}" for v in spec.pixel_spacing]
    measures.SliceThickness = f"{spec.slice_spacing:.6f}"
    measures.SpacingBetweenSlices = f"{spec.slice_spacing:.6f}"
    orientation = Dataset()
    orientation.ImageOrientationPatient = [f"{v:.7f}" for v in spec.iop]
    transform = Dataset()
    transform.RescaleIntercept, transform.RescaleSlope = f"{spec.intercept:g}", f"{spec.slope:g}"
    transform.RescaleType = "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelValueTransformationSequence = Sequence([transform])
    if spec.window is not None:
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = f"{spec.window[0]:g}", f"{spec.window[1]:g}"
        shared.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    per_frame = []
    for k in frame_order:
        position = Dataset()
        position.ImagePositionPatient = [f"{v:.6f}" for v in spec.position(k)]
        item = Dataset()
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)

    _image_pixel_module(ds, stored.shape[1], stored.shape[0], spec.unsigned)
    frames = np.stack([stored[:, :, k].T for k in frame_order])  # frames x rows x columns
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp_values(shape: tuple[int, int, int], *, low: float = -1000.0, high: float = 1500.0) -> np.ndarray:
    """A volume (column, row, slice) whose every voxel differs, so an axis swap or flip shows, in HU."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    flat = i + shape[0] * (j + shape[1] * k)
    return np.round(low + (high - low) * flat / max(flat.max(), 1))


def dicom_text_file(path: str | Path) -> Path:
    """A valid DICOM file without pixel data (an RT Structure Set header), as folders often hold."""
    path = Path(path)
    sop_instance = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(RTStructureSetStorage, sop_instance)
    ds.SOPClassUID, ds.SOPInstanceUID = RTStructureSetStorage, sop_instance
    ds.Modality, ds.SeriesInstanceUID, ds.StructureSetLabel = "RTSTRUCT", generate_uid(), "contours"
    ds.save_as(path, enforce_file_format=True)
    return path
