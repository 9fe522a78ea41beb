"""The WHU-Hi protocol: training pixels per class (seeded) or the official split files; pixel access.

A split is two (H, W) label maps, as the WHU-Hi ``Train<N>.mat`` / ``Test<N>.mat`` files hold them:
``train`` has the class at each training pixel and 0 elsewhere, ``test`` the class at every other
labelled pixel. Pixels without data (ENVI's "data ignore value", NaN) are in neither set: a classifier can
neither learn from nor be scored on a pixel the sensor did not measure. Pixels are read from the cube in
row blocks, so a memory-mapped cube is never loaded whole; progress callbacks report each block and a stop
callback cancels between blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engines.errors import InputError

# progress(stage, step, total): called after each unit of work; stop(): True asks the work to end.
Progress = Callable[[str, int, int], None]
Stop = Callable[[], bool]
PER_CLASS_CHOICES = (25, 50, 100, 300)


class Cancelled(RuntimeError):
    """Raised inside a long computation when its `stop` callback returned True."""


def report(progress: Progress | None, stop: Stop | None, stage: str, step: int, total: int) -> None:
    """Call `progress`, then raise `Cancelled` if `stop` says so."""
    if progress is not None:
        progress(stage, step, total)
    if stop is not None and stop():
        raise Cancelled(f"stopped during {stage} ({step}/{total})")


@dataclass
class Split:
    """Training and test label maps (H, W) int32, 0 = not in the set; disjoint. `no_data_labelled`: the
    labelled pixels left out of both for want of data. `notes`: where the split departs from its usual
    rule, and why (also said in `description`)."""

    train: np.ndarray
    test: np.ndarray
    description: str
    no_data_labelled: int = 0
    notes: list[str] = field(default_factory=list)

    def counts(self, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and test pixel counts per class 1..n_classes, shape (n_classes,) each."""
        return (
            np.bincount(self.train.ravel(), minlength=n_classes + 1)[1 : n_classes + 1],
            np.bincount(self.test.ravel(), minlength=n_classes + 1)[1 : n_classes + 1],
        )

    def without(self, no_data: np.ndarray | None) -> Split:
        """This split with the pixels where `no_data` (H, W) is set taken out of both sets."""
        if no_data is None or not no_data.any():
            return self
        dropped = int((no_data & ((self.train > 0) | (self.test > 0))).sum())
        return Split(train=np.where(no_data, 0, self.train).astype(np.int32),
                     test=np.where(no_data, 0, self.test).astype(np.int32), description=self.description,
                     no_data_labelled=self.no_data_labelled + dropped, notes=list(self.notes))


def sample_split(labels: np.ndarray, per_class: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `per_class` training pixels of every class at random (seeded); the other labelled pixels test.

    A class with fewer than 2 * `per_class` pixels gives half of them, rounded down, to training, so that
    it keeps as many test pixels as training pixels (one more when its count is odd); a class of a single
    pixel gives that pixel to training and has no test pixel (it is then not scored).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Ground truth, 0 = unlabelled.
    per_class : int
        Training pixels per class (WHU-Hi uses 25, 50, 100, 300).
    seed : int
        Seed of numpy's default generator; classes are drawn in increasing order.

    Returns
    -------
    train, test : ndarray of int32, shape (H, W)
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    lab = np.asarray(labels)
    flat = lab.ravel()
    rng = np.random.default_rng(seed)
    train = np.zeros(flat.size, np.int32)
    for c in np.unique(flat[flat > 0]):
        idx = np.flatnonzero(flat == c)
        n = min(per_class, max(1, idx.size // 2))
        train[rng.choice(idx, n, replace=False)] = c
    test = np.where((flat > 0) & (train == 0), flat, 0).astype(np.int32)
    return train.reshape(lab.shape), test.reshape(lab.shape)


def make_split(
    labels: np.ndarray | None,
    *,
    per_class: int | None = None,
    seed: int = 0,
    train_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    no_data: np.ndarray | None = None,
) -> Split:
    """A seeded split of `labels`, or the official split read from `train_file` (+ `test_file`).

    Without `test_file`, the test set is every labelled pixel of `labels` that is not a training pixel.
    Pixels where `no_data` (H, W) is set are left out of both sets (of a seeded split, before drawing).
    """
    from engines.io.cubes import read_labels

    if train_file is not None:
        shape = labels.shape if labels is not None else None if no_data is None else no_data.shape
        train, _ = read_labels(train_file, shape=shape)
        if test_file is not None:
            test, _ = read_labels(test_file, shape=train.shape)
        elif labels is not None:
            test = np.where((labels > 0) & (train == 0), labels, 0).astype(np.int32)
        else:
            raise InputError("a training split file needs the ground truth or a test split file", train_file)
        if np.any((train > 0) & (test > 0)):
            raise InputError("training and test split files share pixels", test_file)
        names = f"{os.path.basename(train_file)}" + (f" / {os.path.basename(test_file)}" if test_file else "")
        return Split(train=train, test=test, description=f"official split files {names}").without(no_data)
    if labels is None:
        raise InputError("the cube has no ground truth (give one, e.g. --gt CUBE_gt.mat)", source)
    if per_class is None:
        raise ValueError("give per_class or train_file")
    usable = labels if no_data is None else np.where(no_data, 0, labels)
    train, test = sample_split(usable, per_class, seed=seed)
    description = f"{per_class} random training pixels per class, seed {seed}"
    note = small_classes_note(usable, train, per_class)
    notes = [note] if note else []
    description = "; ".join([description, *notes])
    dropped = 0 if no_data is None else int((no_data & (labels > 0)).sum())
    return Split(train=train, test=test, description=description, no_data_labelled=dropped, notes=notes)


def small_classes_note(labels: np.ndarray, train: np.ndarray, per_class: int) -> str:
    """What `sample_split` did with the classes of `labels` (H, W) that have fewer than 2 * `per_class`
    pixels, given the `train` (H, W) it drew; "" when there are none."""
    sizes = np.bincount(labels[labels > 0].ravel())
    drawn = np.bincount(train.ravel(), minlength=sizes.size)
    short = [int(c) for c in np.flatnonzero(sizes) if drawn[c] < per_class or drawn[c] == sizes[c]]
    if not short:
        return ""

    def one(c: int) -> str:
        n, k = int(sizes[c]), int(drawn[c])
        tail = ": not scored" if n == k else ""
        return f"{c} ({n} pixel{'s' * (n != 1)}: {k} train, {n - k} test{tail})"

    many = len(short) > 1
    has, trains = ("have", "train") if many else ("has", "trains")
    return (f"class{'es' if many else ''} {', '.join(one(c) for c in short)} {has} fewer than "
            f"{2 * per_class} pixels and {trains} on half of them (rounded down, at least 1)")


def band_mask(n_bands: int, bad_bands: np.ndarray | None) -> np.ndarray:
    """Bands to use, shape (B,) bool: all but those flagged bad."""
    keep = np.ones(n_bands, bool) if bad_bands is None else ~np.asarray(bad_bands, bool)
    if not keep.any():
        raise InputError("every band is flagged bad (bbl)")
    return keep


def no_data_pixels(
    data, keep: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
) -> np.ndarray:
    """(H, W) bool: pixels with a non-finite value in some kept band (no data; bad bands do not count)."""
    out = np.zeros(tuple(data.shape[:2]), bool)
    for r0, block in row_blocks(data, keep, progress=progress, stop=stop, stage="looking for no-data pixels"):
        out[r0 : r0 + block.shape[0]] = ~np.isfinite(block).all(axis=-1)
    return out


def row_blocks(
    data,
    keep: np.ndarray,
    *,
    rows: int = 32,
    progress: Progress | None = None,
    stop: Stop | None = None,
    stage: str = "reading",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, float32 block (r, W, B_kept)) over the cube, `rows` rows at a time."""
    h = int(data.shape[0])
    for r0 in range(0, h, rows):
        yield r0, np.asarray(data[r0 : r0 + rows], dtype=np.float32)[..., keep]
        report(progress, stop, stage, min(r0 + rows, h), h)


def gather(data, mask: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Spectra at the pixels where `mask` (H, W) is set, in row-major order, float32 (n, B_kept).

    Reads only the rows that hold such pixels.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    out = [np.asarray(data[r], dtype=np.float32)[mask[r]][:, keep] for r in rows]
    return np.concatenate(out) if out else np.zeros((0, int(keep.sum())), np.float32)
