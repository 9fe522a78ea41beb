"""Real DICOM test files shipped inside pydicom (`pydicom.data`), used as demo data (DESIGN §5).

CT_small.dcm is one real 128x128 CT slice (0.66 mm pixels, 5 mm thick, rescale intercept -1024, no window
in the file). No network: these files are part of the installed pydicom package.
"""

from __future__ import annotations

from pydicom.data import get_testdata_file

from engines.errors import InputError

CT_SMALL = "CT_small.dcm"
CT_SMALL_NAME = "pydicom CT_small (real CT slice)"


def testdata_path(name: str) -> str:
    """Path of a file bundled with pydicom, e.g. "CT_small.dcm"; InputError if this pydicom lacks it."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise InputError("not among the test files bundled with the installed pydicom", name)
    return str(path)


def ct_small_path() -> str:
    """Path of pydicom's bundled CT_small.dcm."""
    return testdata_path(CT_SMALL)
