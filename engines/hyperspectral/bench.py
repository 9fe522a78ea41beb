"""One run of the WHU-Hi protocol: split, fit, predict, score (used by `hsi-bench`, benchmark, dock)."""

from __future__ import annotations

import os
import re
import time

import numpy as np

from engines.cube import Cube
from engines.errors import InputError
from engines.hyperspectral.classifiers import GaussianMLClassifier, SVMClassifier
from engines.hyperspectral.display import without_ignored
from engines.hyperspectral.metrics import accuracy_report
from engines.hyperspectral.protocol import (
    Progress,
    Split,
    Stop,
    band_mask,
    make_split,
    no_data_pixels,
)

METHODS = ("svm", "gmlc", "cnn")


def make_classifier(method: str, *, seed: int = 0, quick: bool = False, class_names: list[str] | None = None):
    """A fresh classifier for `method` ("svm", "gmlc" or "cnn"); `class_names` name classes in its notes
    and errors."""
    if method == "svm":
        return SVMClassifier(seed=seed, quick=quick, class_names=class_names)
    if method == "gmlc":
        return GaussianMLClassifier(seed=seed, quick=quick, class_names=class_names)
    if method == "cnn":
        from engines.hyperspectral.cnn import CNNClassifier  # torch only when asked for

        return CNNClassifier(seed=seed, quick=quick)
    raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


class IgnoredAsNaN:
    """A cube's data (H, W, B) read as float32 with its "data ignore value" as NaN (`without_ignored`), so
    that a no-data pixel is non-finite wherever the protocol reads it (row blocks, gathered spectra, the
    CNN's PCA image)."""

    def __init__(self, cube: Cube) -> None:
        self.cube, self.shape = cube, tuple(cube.data.shape)

    def __getitem__(self, key) -> np.ndarray:
        return without_ignored(self.cube, self.cube.data[key], np.float32)


def spectra(cube: Cube):
    """The cube's data as the protocol reads it: with its "data ignore value" (if any) as NaN."""
    return cube.data if cube.meta.get("data_ignore_value") is None else IgnoredAsNaN(cube)


def no_data_of(cube: Cube, *, progress: Progress | None = None, stop: Stop | None = None) -> np.ndarray:
    """(H, W) bool: the cube's pixels without data (the ignore value or NaN in a band that is not bad)."""
    return no_data_pixels(spectra(cube), band_mask(cube.shape[2], cube.bad_bands), progress=progress,
                          stop=stop)


def split_for(
    cube: Cube,
    *,
    per_class: int | None = None,
    seed: int = 0,
    official: int | None = None,
    train_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    no_data: np.ndarray | None = None,
) -> Split:
    """The split a run uses: explicit split files, official split N found beside the cube, or seeded;
    pixels where `no_data` is set are in neither set."""
    if official is not None:
        found = cube.meta.get("splits", {}).get(official)
        if not found or "train" not in found:
            have = ", ".join(map(str, cube.meta.get("splits", {}))) or "none"
            raise InputError(
                f"no official split file Train{official}.mat beside the cube (found: {have})", cube.source
            )
        train_file, test_file = found["train"], found.get("test")
    if train_file is not None:
        return make_split(cube.labels, train_file=train_file, test_file=test_file, source=cube.source,
                          no_data=no_data)
    return make_split(cube.labels, per_class=per_class, seed=seed, source=cube.source, no_data=no_data)


def run_protocol(
    cube: Cube,
    method: str,
    split: Split,
    *,
    seed: int = 0,
    quick: bool = False,
    full_map: bool = False,
    no_data: np.ndarray | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
) -> tuple[dict, np.ndarray]:
    """Fit `method` on the split's training pixels and score it on its test pixels; pixels without data
    are taken out of both sets and left 0 in the map.

    Parameters
    ----------
    cube : Cube
        ``data`` (H, W, B); bad bands are left out.
    method : {"svm", "gmlc", "cnn"}
    split : Split
    full_map : bool
        Classify every pixel with data (for display), not only the test pixels.
    no_data : ndarray of bool, shape (H, W), optional
        The cube's pixels without data (`no_data_of`); found here when not given.

    Returns
    -------
    result : dict
        ``method``, ``per_class_train``, ``OA``, ``AA``, ``kappa``, ``per_class_accuracy``, ``seconds``
        (fit + predict), and ``fit_seconds``, ``predict_seconds``, ``confusion_matrix``, ``class_names``,
        ``train_counts``, ``test_counts``, ``split``, ``seed``, ``quick``, ``settings``,
        ``grid_search_skipped`` (why, for the SVM; else None), ``notes`` (what the split or the classifier
        did differently from the usual protocol, and why: classes too small for the per-class count, fewer
        GMLC components, a skipped SVM grid search), ``no_data_pixels``,
        ``no_data_labelled`` (labelled pixels left out for want of data).
    class_map : ndarray of uint8 (wider for class ids past 255), shape (H, W)
        Predicted classes (0 where not predicted).
    """
    names = list(cube.class_names)
    n_classes = len(names)
    data = spectra(cube)
    keep = band_mask(cube.shape[2], cube.bad_bands)
    if no_data is None:
        no_data = no_data_pixels(data, keep, progress=progress, stop=stop)
    split = split.without(no_data)
    train_counts, test_counts = split.counts(n_classes)
    if (train_counts > 0).sum() < 2:
        raise InputError("the training set must hold at least two classes", cube.source)
    if not (split.test > 0).any():
        raise InputError("the test set is empty", cube.source)
    clf = make_classifier(method, seed=seed, quick=quick, class_names=names)
    t0 = time.perf_counter()
    try:
        clf.fit(data, split.train, keep, progress=progress, stop=stop)
    except InputError as exc:  # what the method cannot learn from: say which cube
        if exc.path is not None:
            raise
        raise InputError(exc.problem, cube.source) from exc
    t1 = time.perf_counter()
    class_map = clf.predict(
        data, keep, mask=~no_data if full_map else split.test > 0, progress=progress, stop=stop
    )
    t2 = time.perf_counter()
    test = split.test > 0
    scores = accuracy_report(split.test[test], class_map[test], names)
    m = re.match(r"(\d+) random", split.description) or re.search(r"Train(\d+)", split.description)
    result = {
        "method": method,
        "per_class_train": int(m.group(1)) if m else None,
        "OA": scores["OA"],
        "AA": scores["AA"],
        "kappa": scores["kappa"],
        "per_class_accuracy": scores["per_class_accuracy"],
        "seconds": round(t2 - t0, 3),
        "fit_seconds": round(t1 - t0, 3),
        "predict_seconds": round(t2 - t1, 3),
        "confusion_matrix": scores["confusion_matrix"],
        "class_names": names,
        "train_counts": train_counts.tolist(),
        "test_counts": test_counts.tolist(),
        "split": split.description,
        "seed": seed,
        "quick": quick,
        "settings": clf.describe(),
        "notes": [*split.notes, *getattr(clf, "notes", [])],
        "grid_search_skipped": getattr(clf, "grid_search_skipped", None),
        "no_data_pixels": int(no_data.sum()),
        "no_data_labelled": split.no_data_labelled,
    }
    return result, class_map
