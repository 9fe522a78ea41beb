"""The training job's volumes on disk, read block by block, so that no rank holds the whole volume.

`prepare_data` reads the image and labels a slab at a time in their files' own order (a NIfTI, MGH, NRRD or
MetaImage file, raw or compressed, is never held whole: its Volume.data is a memory map, a scaled proxy or
a stream decompressed as it is read), checks them (same grid, labels that
are whole numbers), normalises the image (zero mean, unit SD over the volume) and writes both in that
order, padded to the job's block multiple, as .npy files in OUT/data/ with a meta.json naming the source
files (size, modification time) and the block. A later run or --resume on the same, unchanged files and
block reuses them (`open_data`) without reading the sources again. Each rank then reads only the boxes it
trains on (`BlockFile.read`: positioned reads of the box's rows, no memory map whose pages would pile up in
the rank's RSS as random crops wander).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError
from engines.partition.pad import padded_shape

DATA, META, IMAGE, LABELS = "data", "meta.json", "image.npy", "labels.npy"
FORMAT = 2  # bump when what prepare_data writes changes
MAX_CLASSES = 1024  # label values a job takes: one output channel each, so more is an intensity image
MAX_LABEL = np.iinfo(np.int32).max  # the largest label value taken (a prediction holding it is uint32)
SLAB_VOXELS = 1 << 23  # voxels read at a time while preparing: bounds the temporaries to ~100 MB
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class BlockFile:
    """A .npy volume (C or Fortran order) whose boxes are read with positioned reads, without mapping the
    file.

    Parameters
    ----------
    path : path
        A 3D .npy file written by numpy (format version 1.0 or 2.0).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in HEADER_READERS:
                raise InputError(f".npy format version {version} is not one this job writes", self.path)
            shape, fortran, dtype = HEADER_READERS[version](f)
            self.offset = f.tell()
        if len(shape) != 3:
            raise InputError(f"expected a 3D array; found shape {shape}", self.path)
        self.shape: tuple[int, int, int] = tuple(int(n) for n in shape)  # type: ignore[assignment]
        self.fortran = bool(fortran)
        self._disk = self.shape[::-1] if self.fortran else self.shape  # the file's bytes in C order
        self.dtype = np.dtype(dtype)

    def read(self, box: Sequence[slice]) -> np.ndarray:
        """The voxels of `box` (three slices with step 1 inside the volume), as a new C-ordered array.

        One read per plane of the box across the file's slowest axis (D in C order, W in Fortran order):
        its rows from the first to the last, whole along the fastest axis, then cut to the box (so a block of
        a mesh split along the fastest axis costs the other blocks' share of those rows, from the page cache)
        and copied into place: no second copy of the box.
        """
        ranges = [s.indices(n)[:2] for s, n in zip(box, self.shape, strict=True)]
        out = np.empty([max(stop - start, 0) for start, stop in ranges], self.dtype)
        if not out.size:
            return out
        slow, fast = (2, 0) if self.fortran else (0, 2)
        (p0, p1), (r0, r1), (f0, f1) = ranges[slow], ranges[1], ranges[fast]
        _, rows, width = self._disk
        item = self.dtype.itemsize
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, plane in enumerate(range(p0, p1)):
                raw = self._read_exactly(fd, (r1 - r0) * width * item,
                                         self.offset + (plane * rows + r0) * width * item, plane)
                part = np.frombuffer(raw, self.dtype).reshape(r1 - r0, width)[:, f0:f1]
                if self.fortran:
                    out[:, :, i] = part.T
                else:
                    out[i] = part
        finally:
            os.close(fd)
        return out

    def _read_exactly(self, fd: int, length: int, start: int, plane: int) -> bytes:
        """`length` bytes from `start`: a read may return fewer (over 2 GiB, network file systems)."""
        parts, done = [], 0
        while done < length:
            part = os.pread(fd, length - done, start + done)
            if not part:
                axis = "W" if self.fortran else "D"
                raise InputError(f"the file ends early (plane {plane} of {self._disk[0]} along {axis})",
                                 self.path)
            parts.append(part)
            done += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass(frozen=True)
class JobData:
    """The prepared volumes of a training job and what was learnt reading them."""

    image: BlockFile  # (D, H, W) float32, normalised, padded to the block multiple
    labels: BlockFile  # (D, H, W) class indices, the smallest unsigned type that holds them, padded with 0
    shape: tuple[int, int, int]  # the image's own extent, before padding
    affine: np.ndarray
    mean: float
    std: float
    values: tuple[int, ...]  # the label value of each class, ascending (label_values)
    warnings: tuple[str, ...] = ()  # what reading the files found, each after its file's name

    @property
    def classes(self) -> int:
        """The number of classes the network learns."""
        return len(self.values)


def data_dir(out: str | os.PathLike) -> Path:
    """Where a training output folder keeps its prepared volumes."""
    return Path(out) / DATA


def _stamp(path: Path) -> str:
    # Size, modification and change times, inode: a rewrite, a copy over it or a rename onto it shows,
    # however coarse the file system's mtime (ctime is set by the kernel on every change).
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


def _detached_data(header: Path) -> Path | None:
    """The voxel file a MetaImage (.mhd) or detached NRRD (.nhdr) header names, if it is one file."""
    keys = {".mhd": "elementdatafile", ".nhdr": "datafile"}
    key = keys.get(header.suffix.lower())
    if key is None:
        return None
    for line in header.read_text(errors="replace").splitlines():
        name, sep, value = line.partition("=" if header.suffix.lower() == ".mhd" else ":")
        if sep and name.replace(" ", "").lower() == key:
            value = value.strip()
            return None if value.upper() in ("LOCAL", "LIST") or "%" in value else header.parent / value
    return None


def source_identity(path: str | os.PathLike) -> dict:
    """What tells whether a volume's files changed: the absolute path and each file's size, times and
    inode (a DICOM folder's every file; a .mhd/.nhdr header's voxel file too)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not path.is_dir() and (data := _detached_data(path)) is not None and data.exists():
        files.append(data)
    digest = hashlib.sha256()
    for item in files:
        digest.update(f"{item.relative_to(path) if path.is_dir() else item}\0{_stamp(item)}\n".encode())
    return {"path": str(path), "files": digest.hexdigest()}


def _key(image: str, labels: str, block: Sequence[int]) -> dict:
    return {"format": FORMAT, "image": source_identity(image), "labels": source_identity(labels),
            "block": [int(b) for b in block]}


def open_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike, *,
              classes: Sequence[int] | None = None) -> JobData | None:
    """The prepared volumes in OUT/data/, when they were made from these unchanged files for `block`, with
    `classes` as the class table (see prepare_data; by default the values the labels hold)."""
    folder = data_dir(out)
    try:
        meta = json.loads((folder / META).read_text())
        key = _key(image, labels, block)
    except (OSError, ValueError):
        return None
    table = meta.get("present") if classes is None else list(map(int, classes))
    if meta.get("key") != key or meta.get("values") != table:
        return None
    try:
        files = BlockFile(folder / IMAGE), BlockFile(folder / LABELS)
    except OSError:  # a volume deleted by hand: prepare again
        return None
    return JobData(*files, tuple(meta["shape"]), np.asarray(meta["affine"], dtype=np.float64), meta["mean"],
                   meta["std"], tuple(meta["values"]), tuple(meta.get("warnings", ())))


def wait_for_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike, *,
                  timeout_s: float, give_up: Callable[[], str | None] = lambda: None,
                  classes: Sequence[int] | None = None) -> JobData:
    """`open_data` once another process (rank 0) has prepared the volumes; InputError after `timeout_s`,
    or as soon as `give_up()` gives a reason (the job is stopping, rank 0 failed)."""
    deadline = time.monotonic() + timeout_s
    while (found := open_data(image, labels, block, out, classes=classes)) is None:
        if reason := give_up():
            raise InputError(reason, data_dir(out))
        if time.monotonic() > deadline:
            raise InputError(f"rank 0 did not prepare the training volumes here within {timeout_s:.0f} s; "
                             f"with several machines OUT must be a folder every machine sees", data_dir(out))
        time.sleep(0.2)
    return found


def listed(values: Sequence[int], shown: int = 8) -> str:
    """Label values for a message: all of a few, the first ones and the count of many."""
    values = list(values)
    if len(values) <= shown:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[:shown]))}, ... ({len(values)} values)"


def label_values(labels: Any, path: str) -> tuple[int, ...]:
    """The label values `labels` (an array-like, e.g. Volume.data) hold, ascending, read a slab at a time:
    the classes the network learns, class c standing for the c-th value. Values need not be 0..C-1:
    BraTS's 0, 1, 2, 4 or FreeSurfer's ids up to 2035 train as that many classes, not as max + 1.

    Raises InputError otherwise (fractions, infinities, negatives, a single value, more than MAX_CLASSES
    values: an intensity image rather than a label map)."""
    exact = np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_
    if not exact and not np.issubdtype(labels.dtype, np.floating):
        raise InputError(f"labels must be whole numbers (label values); found {labels.dtype} values", path)
    found = np.zeros(0, np.int64)
    for box in _slabs(labels.shape, file_order(labels)[0]):
        slab = np.asarray(labels[box])
        if not exact and (bad := slab[~np.isfinite(slab) | (slab != np.round(slab))]).size:
            raise InputError(f"labels must be whole numbers (label values); found {labels.dtype} values "
                             f"such as {bad.flat[0]}", path)
        if slab.size and (low := slab.min()) < 0:
            raise InputError(f"labels must be 0 or more; found {int(low)}", path)
        if slab.size and float(high := slab.max()) > MAX_LABEL:  # as a float: no overflow in float16
            raise InputError(f"label values must be at most {MAX_LABEL}; found {high}", path)
        found = np.union1d(found, _present(slab))
        if len(found) > MAX_CLASSES:
            raise InputError(f"labels hold more than {MAX_CLASSES} different values: this looks like an "
                             f"intensity image, not a label map (one class per value)", path)
    if len(found) < 2:
        raise InputError(f"labels hold a single class (every voxel is {int(found[0]) if len(found) else 0}); "
                         "segmentation needs at least two", path)
    return tuple(int(v) for v in found)


def _present(slab: np.ndarray) -> np.ndarray:
    """The values in a slab of non-negative whole numbers, as int64: counted by value (one pass) when they
    are small integers, sorted out with np.unique otherwise."""
    if slab.size and np.can_cast(slab.dtype, np.intp) and slab.max() <= MAX_CLASSES:
        return np.flatnonzero(np.bincount(slab.ravel(order="K")))
    return np.unique(slab).astype(np.int64)


def file_order(data: Any) -> tuple[int, int, int]:
    """The axes of a 3D array-like from the slowest in memory to the fastest: (2, 1, 0) when its last axis is
    the slowest (a NIfTI or ITK volume: the first axis is fastest in the file), else (0, 1, 2). Reading slabs
    along the first of them reads a memory-mapped file once, in order; across it, every slab would touch
    every page of the file."""
    strides = getattr(data, "strides", None)
    if strides is None:
        return (0, 1, 2)
    axes = [a for a in range(3) if data.shape[a] > 1]  # an axis of one voxel (a 2D image's K) has no order
    return (2, 1, 0) if len(axes) > 1 and abs(strides[axes[-1]]) > abs(strides[axes[0]]) else (0, 1, 2)


def _slabs(shape: Sequence[int], axis: int) -> list[tuple[slice, slice, slice]]:
    """Boxes that cover a volume of `shape`, each whole but along `axis`, of about SLAB_VOXELS voxels."""
    step = max(1, SLAB_VOXELS // max(math.prod(shape) // max(shape[axis], 1), 1))
    return [tuple(slice(a, min(a + step, shape[axis])) if i == axis else slice(None)  # type: ignore[misc]
                  for i in range(3)) for a in range(0, shape[axis], step)]


def _moments(slab: np.ndarray) -> tuple[int, float, float]:
    """Voxel count, mean and sum of squared deviations of a float64 slab (changed in place)."""
    mean = float(slab.mean()) if slab.size else 0.0
    slab -= mean
    flat = slab.ravel(order="K")  # a view whatever the source's layout
    return slab.size, mean, float(np.dot(flat, flat))


def _mean_std(image: Any, path: str) -> tuple[float, float]:
    """Mean and SD over the whole volume (an array-like) in float64, reading each slab once: the slabs'
    own moments combined with Chan et al.'s pairwise update (no cancellation). One slab is held at a time.

    Raises InputError for NaN or infinite voxels (a slab's mean is then not finite), which would make
    every loss NaN."""
    count, mean, squares = 0, 0.0, 0.0
    axis = file_order(image)[0]
    for box in _slabs(image.shape, axis):
        size, slab_mean, slab_squares = _moments(_own_float64(image[box]))
        if not math.isfinite(slab_mean):
            raise InputError(f"the image holds NaN or infinite values (between index {box[axis].start} and "
                             f"{box[axis].stop - 1} along axis {axis}); training needs finite intensities",
                             path)
        if size:
            total = count + size
            delta = slab_mean - mean
            mean += delta * size / total
            squares += slab_squares + delta**2 * count * size / total
            count = total
    return mean, math.sqrt(squares / max(count, 1))


def _own_float64(part: np.ndarray) -> np.ndarray:
    """`part` as a float64 array of its own, to change in place: a view of the source is copied (the source
    is never changed); an array that owns its memory (a conversion, a ScaledProxy's fresh slab) is not."""
    slab = np.asarray(part, np.float64)
    return slab if slab.flags.owndata and slab.flags.writeable else slab.copy()


def _normaliser(mean: float, sd: float) -> Callable[[np.ndarray], np.ndarray]:
    """(value - mean) / sd, in float64 (rounded once, where it is written)."""
    def normalise(values: np.ndarray) -> np.ndarray:
        values = _own_float64(values)
        values -= mean
        values /= sd
        return values
    return normalise


def _class_indexer(values: Sequence[int]) -> Callable[[np.ndarray], np.ndarray] | None:
    """Each label value's class index (its place in `values`); None when the values are 0..C-1 already."""
    if list(values) == list(range(len(values))):
        return None
    table = np.asarray(values)
    return lambda labels: np.searchsorted(table, labels)


def _fill(slab: np.ndarray, part: Any, order: tuple[int, int, int], fill: float,
          convert: Callable[[np.ndarray], np.ndarray] | None) -> None:
    """Set `slab` (in the file's axis order) to `part` of the source (in its own), converted, padded with
    `fill`. A function of its own so that one slab's temporaries are gone before the next slab is read."""
    values = np.asarray(part)
    if convert is not None:
        values = convert(values)
    inside = values.transpose(order)
    slab.fill(fill)
    slab[tuple(slice(0, n) for n in inside.shape)] = inside


def _write(path: Path, shape: tuple[int, int, int], dtype: np.dtype, fill: float, source: Any,
           convert: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Write `source` (an array-like, read a slab at a time in its own memory order) as a new .npy of
    `shape` and `dtype` in the same order (C, or Fortran for a NIfTI or ITK volume), padded with `fill`;
    each slab passed through `convert` first, when given.

    Plain writes, not a memory map, so a disk that fills up raises OSError rather than SIGBUS; the file
    appears under its name only when complete, and a failed one is removed.
    """
    order = file_order(source)
    disk = tuple(shape[a] for a in order)  # the shape whose C order the file's bytes follow
    tmp = path.with_suffix(".tmp.npy")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": order[0] == 2,
              "shape": tuple(shape)}
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            slabs = [box[0] for box in _slabs(disk, 0)]
            buffer = np.empty((slabs[0].stop, *disk[1:]), dtype)  # one slab's memory, reused
            for s in slabs:
                slab = buffer[: s.stop - s.start]
                key = [slice(None)] * 3
                key[order[0]] = slice(s.start, min(s.stop, source.shape[order[0]]))
                _fill(slab, source[tuple(key)], order, fill, convert)
                f.write(slab)  # its buffer: no copy
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _free_disk(folder: Path) -> int:
    """Free bytes where `folder` is, or would be once created."""
    for place in (folder, *folder.parents):
        if place.exists():
            return shutil.disk_usage(place).free
    return shutil.disk_usage(".").free


def prepare_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike,
                 check: Callable[[tuple[int, ...], tuple[int, ...]], None] = lambda shape, values: None, *,
                 classes: Sequence[int] | None = None) -> JobData:
    """Check the volumes and write them to OUT/data/ for the ranks, unless an unchanged copy is there.

    Parameters
    ----------
    image, labels : paths
        Any format engines.io reads; the labels on the image's grid, whole numbers (label_values), written
        as class indices.
    block : (int, int, int)
        The mesh's blocks x the network's downsampling: the volumes are padded (at the far end) to it.
    check : callable(shape, values)
        The caller's own checks of the volume's shape and classes' label values (raising InputError), run
        after reading and before anything is written.
    classes : label values, optional
        What each class stands for (a checkpoint's, to resume it): the labels may hold these values only.
        By default the values the labels hold.

    Raises
    ------
    InputError
        Shape or affine mismatch, not a 3D volume, labels that are not label values, NaN or infinite
        intensities, what `check` refuses, or too little disk. Nothing is written then.
    """
    if (found := open_data(image, labels, block, out, classes=classes)) is not None:
        return found
    from engines.io import read_volume

    key = _key(image, labels, block)  # the files as they are before reading: a later change shows
    image_vol, label_vol = read_volume(image, stream=True), read_volume(labels, stream=True)
    if image_vol.shape != label_vol.shape:
        raise InputError(f"labels are {label_vol.shape} voxels, the image {image_vol.shape}: they must "
                         f"share a grid", labels)
    if not np.allclose(image_vol.affine, label_vol.affine, atol=1e-3):
        raise InputError("labels and image have different voxel-to-world affines: they must share a grid",
                         labels)
    if len(image_vol.shape) != 3:
        raise InputError(f"a 3D volume is needed; this one is {image_vol.shape}", image)
    # Volume.data stays lazy (a memory map, a scaled proxy, a gzip stream) and is read a slab at a time
    # from here on; a DICOM series (or a NRRD or MetaImage of ASCII numbers or slice files) was read whole.
    pixels, label_data = image_vol.data, label_vol.data
    present = values = label_values(label_data, labels)
    if classes is not None:
        if unknown := sorted(set(values) - set(classes)):
            raise InputError(f"the labels hold values the network has no class for ({listed(unknown)}); its "
                             f"classes are {listed(classes)}", labels)
        values = tuple(int(c) for c in classes)
    label_dtype = np.min_scalar_type(len(values) - 1)
    check(tuple(pixels.shape), values)
    mean, std = _mean_std(pixels, image)
    std = std or 1.0
    padded = padded_shape(pixels.shape, block)

    folder = data_dir(out)
    needed = int(np.prod(padded)) * (4 + label_dtype.itemsize)
    if needed > (free := _free_disk(folder)):
        raise InputError(f"the prepared training volumes need {needed / 2**30:.2f} GiB here; "
                         f"{free / 2**30:.2f} GiB are free", folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)  # what follows is not valid until the new meta.json is there
    _write(folder / IMAGE, padded, np.dtype(np.float32), (0 - mean) / std, pixels, _normaliser(mean, std))
    _write(folder / LABELS, padded, label_dtype, 0, label_data, _class_indexer(values))
    affine = np.asarray(image_vol.affine, dtype=np.float64)
    warnings = [f"{Path(path).name}: {warning}" for path, volume in ((image, image_vol), (labels, label_vol))
                for warning in volume.warnings]
    meta = {"key": key, "shape": list(pixels.shape), "padded": list(padded), "affine": affine.tolist(),
            "mean": mean, "std": std, "values": list(values), "present": list(present), "warnings": warnings}
    tmp = folder / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / META)
    return JobData(BlockFile(folder / IMAGE), BlockFile(folder / LABELS), tuple(pixels.shape), affine, mean,
                   std, values, tuple(warnings))
