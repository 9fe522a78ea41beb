"""WHU-Hi cubes in MATLAB files: ``WHU_Hi_<Name>.mat`` + ``WHU_Hi_<Name>_gt.mat`` + ``Train<N>/Test<N>.mat``.

MATLAB v5 files are read with scipy.io (loaded whole: the format cannot be memory-mapped); v7.3 files are
HDF5 and read with h5py, memory-mapped when the array is stored contiguous and uncompressed. MATLAB writes
v7.3 arrays column-major, so h5py sees them with their axes reversed; they are transposed back here.

The .mat files carry no wavelengths. For the WHU-Hi scenes (Headwall Nano-Hyperspec, 400-1000 nm) the
band centres are *assumed* evenly spaced over 400-1000 nm, and the Cube says so in ``warnings`` and
``meta["wavelength_source"]``. Optional extra variables are honoured when present (the demo scene writes
them): ``wavelengths_nm`` (B,), ``class_names`` (cell of strings), ``reflectance_scale_factor``,
``description``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError, matfile_version

from engines.cube import Cube
from engines.errors import InputError
from engines.io.cubes import check_labels, check_wavelengths

# Class names of the three WHU-Hi scenes (index c-1 = class c), as published with the data set.
WHU_HI_CLASSES: dict[str, tuple[str, ...]] = {
    "LongKou": (
        "Corn",
        "Cotton",
        "Sesame",
        "Broad-leaf soybean",
        "Narrow-leaf soybean",
        "Rice",
        "Water",
        "Roads and houses",
        "Mixed weed",
    ),
    "HanChuan": (
        "Strawberry",
        "Cowpea",
        "Soybean",
        "Sorghum",
        "Water spinach",
        "Watermelon",
        "Greens",
        "Trees",
        "Grass",
        "Red roof",
        "Gray roof",
        "Plastic",
        "Bare soil",
        "Road",
        "Bright object",
        "Water",
    ),
    "HongHu": (
        "Red roof",
        "Road",
        "Bare soil",
        "Cotton",
        "Cotton firewood",
        "Rape",
        "Chinese cabbage",
        "Pakchoi",
        "Cabbage",
        "Tuber mustard",
        "Brassica parachinensis",
        "Brassica chinensis",
        "Small Brassica chinensis",
        "Lactuca sativa",
        "Celtuce",
        "Film covered lettuce",
        "Romaine lettuce",
        "Carrot",
        "White radish",
        "Garlic sprout",
        "Broad bean",
        "Tree",
    ),
}
# Spectral range of the Nano-Hyperspec sensor that recorded WHU-Hi; band centres assumed evenly spaced.
WHU_HI_RANGE_NM = (400.0, 1000.0)
SPLIT_FILE = re.compile(r"^(train|test)(\d+)\.mat$", re.IGNORECASE)
_SCENE = re.compile(r"WHU_Hi_([A-Za-z0-9]+?)(?:_gt)?$", re.IGNORECASE)
_OPTIONAL = ("wavelengths_nm", "class_names", "reflectance_scale_factor", "description")


def mat_version(path: str | os.PathLike) -> str:
    """ "v4", "v5" or "v7.3" (HDF5); InputError for a file that is not a MATLAB file."""
    try:
        major, _ = matfile_version(str(path))
    except (MatReadError, ValueError, OSError, IndexError) as exc:  # IndexError: a text file named .mat
        if h5py.is_hdf5(path):  # v7.3 written without MATLAB's 128-byte text header
            return "v7.3"
        raise InputError(f"not a MATLAB .mat file ({exc})", path) from exc
    return {0: "v4", 1: "v5", 2: "v7.3"}[major]


def _open_h5(path: str | os.PathLike) -> h5py.File:
    """A v7.3 (HDF5) .mat file opened read-only; InputError for a truncated or damaged one."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"damaged MATLAB v7.3 (HDF5) file ({exc})", path) from exc


def mat_variables(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape in MATLAB's order, MATLAB class) of every variable, without loading any."""
    if mat_version(path) == "v7.3":
        with _open_h5(path) as f:
            return {
                k: (tuple(reversed(v.shape)), _h5_class(v))
                for k, v in f.items()
                if isinstance(v, h5py.Dataset) and not k.startswith("#")
            }
    try:
        return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))}
    except (ValueError, OSError, NotImplementedError) as exc:
        raise InputError(f"unreadable MATLAB file ({exc})", path) from exc


def _h5_class(ds: h5py.Dataset) -> str:
    cls = ds.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def load_mat_variable(path: str | os.PathLike, key: str) -> Any:
    """One variable in MATLAB's axis order: a memmap for contiguous v7.3 arrays, else an ndarray."""
    if mat_version(path) != "v7.3":
        try:
            return scipy.io.loadmat(str(path), variable_names=[key], squeeze_me=False)[key]
        except (ValueError, OSError, NotImplementedError, KeyError) as exc:
            raise InputError(f"could not read variable {key!r} ({exc})", path) from exc
    try:
        with _open_h5(path) as f:
            ds = f[key]
            if _h5_class(ds) == "cell":
                return np.array([_h5_string(f[ref]) for ref in np.asarray(ds).ravel(order="F")], dtype=object)
            if _h5_class(ds) == "char":
                return np.array([_h5_string(ds)], dtype=object)
            offset = ds.id.get_offset() if ds.chunks is None and ds.compression is None else None
            if offset is None or ds.size == 0:
                return np.asarray(ds).T
            shape, dtype = ds.shape, ds.dtype
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape).T
    except (OSError, ValueError, KeyError) as exc:  # chunks past the end of a cut file, a missing variable
        raise InputError(f"could not read variable {key!r} ({exc})", path) from exc


def _h5_string(ds: h5py.Dataset) -> str:
    return "".join(chr(c) for c in np.asarray(ds).ravel(order="F") if c)


def _strings(value: Any) -> list[str]:
    """A MATLAB cell array of strings or char matrix (as scipy/h5py return them) as a list of str."""
    out = []
    for v in np.asarray(value, dtype=object).ravel():
        arr = np.asarray(v).ravel()
        out.append((v if isinstance(v, str) else str(arr[0]) if arr.size else "").strip())
    return out


def scene_name(path: str | os.PathLike, key: str | None = None) -> str | None:
    """ "LongKou" for WHU_Hi_LongKou(.mat / _gt.mat / key), else None."""
    for text in (key, Path(path).stem):
        m = _SCENE.search(text or "")
        if m:
            return m.group(1)
    return None


def _describe(variables: dict[str, tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, s))} {c}" for k, (s, c) in variables.items()) or "none"


def _pick(path: str | os.PathLike, variables: dict, ndim: int, preferred: list[str], what: str) -> str:
    for key in preferred:
        if key in variables and len(variables[key][0]) == ndim:
            return key
    numeric = [
        k
        for k, (s, c) in variables.items()
        if len(s) == ndim and c not in ("cell", "char", "struct") and k not in _OPTIONAL
    ]
    if len(numeric) == 1:
        return numeric[0]
    hint = ""
    if what == "cube" and any(len(s) == 2 for s, _ in variables.values()):
        hint = " (a 2-D array suggests ground truth or a split file: open the cube WHU_Hi_<Name>.mat)"
    raise InputError(
        f"no recognisable {what} ({ndim}-D array, {'several' if numeric else 'none'} found); "
        f"variables in the file: {_describe(variables)}{hint}",
        path,
    )


def read_mat_cube(path: str | os.PathLike) -> Cube:
    """Read a WHU-Hi-style cube .mat, and the ``Train<N>/Test<N>.mat`` split files beside it (its
    ``<stem>_gt.mat``, or the ground truth the user names, is read by `engines.io.cubes.read_cube`, and
    wins over a label image kept in the cube's own file).

    Returns
    -------
    Cube
        ``data`` (H, W, B) in the file's dtype; ``class_names`` from the file or for the known WHU-Hi scenes;
        ``meta["splits"]`` = {N: {"train": path, "test": path}} for the official split files found.
    """
    p = Path(path)
    variables = mat_variables(p)
    key = _pick(p, variables, 3, [p.stem], "cube")
    data = load_mat_variable(p, key)
    b = data.shape[2]
    scene = scene_name(p, key)
    meta: dict = {
        "format": f"MATLAB {mat_version(p)}",
        "key": key,
        "dtype": str(data.dtype),
        "lazy": isinstance(data, np.memmap),
    }
    warn: list[str] = []
    if meta["format"] == "MATLAB v7.3" and not variables[key][1]:  # h5py's, say, transposed or not
        warn.append(f"'{key}' carries no MATLAB_class attribute, so MATLAB did not write it: its axes are "
                    f"read as MATLAB stores them (reversed), giving rows x columns x bands = "
                    f"{' x '.join(str(n) for n in data.shape)}; a cube written from Python as (rows, "
                    "columns, bands) without transposing it reads with its axes reversed")
    wl = None
    extras = {k: load_mat_variable(p, k) for k in _OPTIONAL if k in variables}
    if "wavelengths_nm" in extras:
        wl = check_wavelengths(np.asarray(extras["wavelengths_nm"], dtype=np.float64).ravel(), b, p, warn)
        meta["wavelength_source"] = "file"
    elif scene is not None:
        wl = np.linspace(*WHU_HI_RANGE_NM, b)
        meta["wavelength_source"] = (
            f"assumed: {b} bands evenly spaced over 400-1000 nm (the WHU-Hi .mat files carry no wavelengths)"
        )
        warn.append(f"wavelengths {meta['wavelength_source']}")
    if "reflectance_scale_factor" in extras:
        meta["reflectance_scale_factor"] = float(np.asarray(extras["reflectance_scale_factor"]).ravel()[0])
    if "description" in extras:
        meta["description"] = " ".join(_strings(extras["description"]))
    if scene is not None:
        meta["scene"] = scene

    names: list[str] = []
    if "class_names" in extras:
        names = _strings(extras["class_names"])
    if not names and scene in WHU_HI_CLASSES:
        names = list(WHU_HI_CLASSES[scene])
    splits = find_split_files(p.parent)
    if splits:
        meta["splits"] = splits
    labels_key, labels = _labels_beside_the_cube(p, variables, data.shape[:2])
    if labels_key is not None:
        meta["labels_variable"] = labels_key
    return Cube(
        data=data,
        wavelengths_nm=wl,
        labels=labels,
        class_names=names,
        meta=meta,
        source=str(path),
        warnings=warn,
    )


def _labels_beside_the_cube(
    path: Path, variables: dict[str, tuple[tuple[int, ...], str]], rows_cols: tuple[int, int]
) -> tuple[str | None, np.ndarray | None]:
    """Ground truth kept in the cube's own file, and its variable: the one numeric 2-D variable of the
    cube's rows x columns, when it holds whole numbers >= 0 (else (None, None): it is something else)."""
    flat = [k for k, (shape, cls) in variables.items() if tuple(shape) == tuple(rows_cols)
            and cls not in ("cell", "char", "struct") and k not in _OPTIONAL]
    if len(flat) != 1:
        return None, None
    try:
        return flat[0], check_labels(np.asarray(load_mat_variable(path, flat[0])), path)
    except InputError:
        return None, None


def read_mat_labels(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """(H, W) integer labels from a ground-truth or split .mat, and class names if the file has them."""
    p = Path(path)
    variables = mat_variables(p)
    m = SPLIT_FILE.match(p.name)
    preferred = [p.stem]
    if m:  # split files: LKtrain25, Train25, HHCYtrain25, ...
        preferred += [k for k in variables if re.search(rf"{m.group(1)}{m.group(2)}$", k, re.IGNORECASE)]
    key = _pick(p, variables, 2, preferred, "ground truth")
    labels = np.asarray(load_mat_variable(p, key))
    names = _strings(load_mat_variable(p, "class_names")) if "class_names" in variables else []
    return check_labels(labels, p), names


def find_split_files(folder: str | os.PathLike) -> dict[int, dict[str, str]]:
    """Official split files ``Train<N>.mat`` / ``Test<N>.mat`` in `folder` or one folder below it.

    WHU-Hi ships them in "Training samples and test samples/" beside the cube. Returns {N: {"train": path,
    "test": path}} with whichever of the two exist, N ascending.
    """
    root = Path(folder)
    found: dict[int, dict[str, str]] = {}
    candidates = list(root.glob("*.mat")) + list(root.glob("*/*.mat"))
    for f in sorted(candidates):
        m = SPLIT_FILE.match(f.name)
        if m:
            found.setdefault(int(m.group(2)), {}).setdefault(m.group(1).lower(), str(f))
    return dict(sorted(found.items()))
