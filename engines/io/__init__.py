"""Reading and writing volumes (NIfTI, DICOM, NRRD, MetaImage, MGH) and cubes; no Qt.

    read_volume(path, *, series_uid=None, allow_gaps=True) -> Volume
    write_volume(volume, path)                             NIfTI with the affine
    list_dicom_series(folder) -> list[DicomSeriesInfo]     the series of a DICOM folder, largest first
"""

from engines.io.dicom_series import DicomSeriesInfo, list_dicom_series
from engines.io.formats import VOLUME_EXTENSIONS, read_volume, supported_formats
from engines.io.nifti import write_volume

# Cubes (engines/io/cubes.py, hyperspectral): exports to be added here by the lead.

__all__ = [
    "VOLUME_EXTENSIONS",
    "DicomSeriesInfo",
    "list_dicom_series",
    "read_volume",
    "supported_formats",
    "write_volume",
]
