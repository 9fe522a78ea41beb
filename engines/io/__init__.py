"""Reading and writing volumes (NIfTI, DICOM, NRRD, MetaImage, MGH) and cubes; no Qt.

    read_volume(path, *, series_uid=None, allow_gaps=True) -> Volume
    write_volume(volume, path)                             NIfTI with the affine
    list_dicom_series(folder) -> list[DicomSeriesInfo]     the series of a DICOM folder, largest first
    read_cube(path) -> Cube                                ENVI, WHU-Hi .mat, multi-band TIFF
    is_cube_path(path) -> bool                             whether `path` names a hyperspectral cube
"""

from engines.io.cubes import is_cube_path, read_cube
from engines.io.dicom_series import DicomSeriesInfo, list_dicom_series
from engines.io.formats import VOLUME_EXTENSIONS, read_volume, supported_formats
from engines.io.nifti import write_volume

__all__ = [
    "VOLUME_EXTENSIONS",
    "DicomSeriesInfo",
    "is_cube_path",
    "list_dicom_series",
    "read_cube",
    "read_volume",
    "supported_formats",
    "write_volume",
]
