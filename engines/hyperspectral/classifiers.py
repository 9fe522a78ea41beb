"""Pixel classifiers of the protocol: RBF SVM (scikit-learn) and Gaussian maximum likelihood (spectral).

Every classifier has the same two steps, so the protocol and the dock treat them alike:

    clf.fit(data, train, keep, progress=..., stop=...)     # data (H, W, B) array-like, train (H, W) labels
    clf.predict(data, keep, mask=None, progress=..., stop=...) -> (H, W) class map (0 outside `mask`)

`keep` (B,) bool selects the bands to use (bad bands dropped). Prediction reads the cube in row blocks.
The spectral-spatial CNN lives in `engines.hyperspectral.cnn` and follows the same interface.
"""

from __future__ import annotations

import numpy as np
import spectral
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from spectral.algorithms.algorithms import GaussianStats

from engines.errors import InputError
from engines.hyperspectral.protocol import Progress, Stop, gather, report, row_blocks
from engines.label_maps import map_dtype


def training_pixels(data, train: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (n, B_kept) float32 and classes (n,) of the training pixels, row-major."""
    mask = train > 0
    return gather(data, mask, keep), train[mask].astype(np.int64)


class PixelClassifier:
    """Shared prediction for classifiers that look at one spectrum at a time."""

    name = "pixel"
    block_rows = 16

    def fit_pixels(
        self, x: np.ndarray, y: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
    ) -> None:
        """Fit on spectra `x` (n, B) with classes `y` (n,); long fits report `progress` and obey `stop`."""
        raise NotImplementedError

    def predict_pixels(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def fit(
        self,
        data,
        train: np.ndarray,
        keep: np.ndarray,
        *,
        progress: Progress | None = None,
        stop: Stop | None = None,
    ) -> PixelClassifier:
        """Fit on the spectra of the pixels where `train` (H, W) > 0."""
        x, y = training_pixels(data, train, keep)
        self.map_dtype = map_dtype(y)
        report(progress, stop, "training", 0, 1)
        self.fit_pixels(x, y, progress=progress, stop=stop)
        report(progress, stop, "training", 1, 1)
        return self

    def predict(
        self,
        data,
        keep: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        progress: Progress | None = None,
        stop: Stop | None = None,
    ) -> np.ndarray:
        """Class map (H, W) of the pixels in `mask` (all when None), 0 elsewhere; uint8 unless a class id
        needs more."""
        h, w = int(data.shape[0]), int(data.shape[1])
        out = np.zeros((h, w), self.map_dtype)
        for r0, block in row_blocks(
            data, keep, rows=self.block_rows, progress=progress, stop=stop, stage="predicting"
        ):
            sel = np.ones(block.shape[:2], bool) if mask is None else mask[r0 : r0 + block.shape[0]]
            if sel.any():
                out[r0 : r0 + block.shape[0]][sel] = self.predict_pixels(block[sel])
        return out


class SVMClassifier(PixelClassifier):
    """RBF-kernel SVM on standardised spectra; C and gamma chosen by stratified cross-validation.

    The grid (C in 1..1000, gamma in 2^-12..2^-4 for standardised spectra) is searched on the training
    pixels only, one (C, gamma) pair at a time so that a stop request ends the search between pairs; the
    first pair with the best mean CV accuracy wins (as GridSearchCV picks). Stratified k-fold needs k
    training pixels in every class: with fewer than 5 (3 when quick) in the smallest class, fewer folds are
    used; with fewer than 2 in some class the search is skipped and C=100, gamma='scale' is used for every
    class. Either way `notes` says so and why.
    """

    name = "svm"
    C_GRID = (1.0, 10.0, 100.0, 1000.0)
    GAMMA_GRID = (2.0**-12, 2.0**-10, 2.0**-8, 2.0**-6, 2.0**-4)

    def __init__(
        self, *, seed: int = 0, quick: bool = False, n_jobs: int = 1, class_names: list[str] | None = None
    ) -> None:
        self.seed, self.quick, self.n_jobs, self.class_names = seed, quick, n_jobs, class_names
        self.model: Pipeline | None = None
        self.best_params: dict = {}
        self.notes: list[str] = []  # what the fit did differently from the description above, and why
        self.grid_search_skipped: str | None = None  # why, when it was

    def fit_pixels(
        self, x: np.ndarray, y: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
    ) -> None:
        pipe = Pipeline(
            [("scale", StandardScaler()), ("svc", SVC(kernel="rbf", C=100.0, gamma="scale", cache_size=500))]
        )
        self.notes, self.grid_search_skipped = [], None
        classes_present = np.unique(y)
        counts = np.bincount(y)[classes_present]
        n_min, usual = int(counts.min()), 3 if self.quick else 5
        folds = min(usual, n_min)
        smallest = [class_label(int(c), self.class_names) for c in classes_present[counts == n_min]]
        verb = "has" if len(smallest) == 1 else "have"
        who = f"{', '.join(smallest)} {verb} {n_min} training pixel{'s' * (n_min != 1)}"
        if folds < 2:
            self.model = pipe.fit(x, y)
            self.best_params = {"C": 100.0, "gamma": "scale"}
            self.grid_search_skipped = f"{who} and cross-validation needs at least 2 per class"
            self.notes.append(f"SVM grid search skipped ({self.grid_search_skipped}); C=100, gamma='scale' "
                              "used for every class")
            return
        if folds < usual:
            self.notes.append(f"SVM grid search used {folds}-fold instead of {usual}-fold cross-validation: "
                              f"{who}")
        grid = [
            (c, g)
            for c in (self.C_GRID[1::2] if self.quick else self.C_GRID)
            for g in (self.GAMMA_GRID[1::2] if self.quick else self.GAMMA_GRID)
        ]
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        scores = []
        for i, (c, g) in enumerate(grid):
            pipe.set_params(svc__C=c, svc__gamma=g)
            scores.append(cross_val_score(pipe, x, y, cv=cv, n_jobs=self.n_jobs).mean())
            report(progress, stop, "grid search", i + 1, len(grid))
        c, g = grid[int(np.argmax(scores))]
        self.model = pipe.set_params(svc__C=c, svc__gamma=g).fit(x, y)
        self.best_params = {"C": c, "gamma": g}

    def predict_pixels(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def describe(self) -> dict:
        """The chosen hyper-parameters (C, gamma); `notes` says when no grid search chose them."""
        return dict(self.best_params)


class GaussianMLClassifier(PixelClassifier):
    """Gaussian maximum-likelihood classifier (`spectral.GaussianClassifier`) on principal components.

    With 25 pixels per class, a 270-band covariance cannot be estimated, so spectra are first reduced by
    a PCA fitted on the training pixels to d = clip(n_min // 3, 2, 20) components, n_min being the
    smallest training class. Classes are built with `spectral.create_training_classes`.

    A class's covariance in d components needs at least d + 1 training pixels. When the smallest class
    has fewer (2 training pixels with d = 2), d is lowered to n_min - 1 and `notes` says so, so that every
    class is modelled; a class with a single training pixel has no covariance at all and is refused with
    an `InputError` naming it (never left out of the model in silence).
    """

    name = "gmlc"
    MAX_COMPONENTS = 20
    MIN_PIXELS = 2  # a covariance, even in one component, needs two pixels

    def __init__(self, *, seed: int = 0, quick: bool = False, class_names: list[str] | None = None) -> None:
        self.seed = seed
        self.class_names = class_names
        self.pca: PCA | None = None
        self.classifier: spectral.GaussianClassifier | None = None
        self.notes: list[str] = []

    def fit_pixels(
        self, x: np.ndarray, y: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
    ) -> None:
        self.notes = []
        classes_present = np.unique(y)
        counts = np.bincount(y)[classes_present]
        too_few = [(int(c), int(n)) for c, n in zip(classes_present, counts, strict=True)
                   if n < self.MIN_PIXELS]
        if too_few:
            listed = ", ".join(f"{class_label(c, self.class_names)} has {n} training pixel{'s' * (n != 1)}"
                               for c, n in too_few)
            raise InputError(
                f"Gaussian maximum likelihood needs at least {self.MIN_PIXELS} training pixels per class to "
                f"estimate its covariance, but {listed}; give it at least "
                f"{self.MIN_PIXELS} training pixels (label more of its pixels, or put them in the training "
                "split file) or use --method svm or cnn"
            )
        n_min = int(counts.min())
        usual = int(np.clip(n_min // 3, 2, self.MAX_COMPONENTS))
        d = min(usual, n_min - 1, x.shape[1], x.shape[0] - 1)
        if d < usual:
            smallest = [class_label(int(c), self.class_names)
                        for c, n in zip(classes_present, counts, strict=True) if n == n_min]
            verb = "has" if len(smallest) == 1 else "have"
            reason = (f"{', '.join(smallest)} {verb} only {n_min} training "
                      f"pixels and a class needs components + 1 of them" if d == n_min - 1 else
                      f"the training spectra allow no more (bands {x.shape[1]}, pixels {x.shape[0]})")
            self.notes.append(f"GMLC used {d} principal component{'s' * (d != 1)} instead of {usual}: "
                              f"{reason}")
        self.pca = PCA(n_components=d, random_state=self.seed).fit(x)
        z = self.pca.transform(x).astype(np.float64)
        # spectral wants an image (rows, cols, bands); the class statistics are computed here because
        # spectral's own cannot take a single component
        classes = spectral.create_training_classes(z[None], y[None], calc_stats=False)
        singular = []
        for cl in classes:
            zc = z[y == cl.index]
            cov = np.atleast_2d(np.cov(zc, rowvar=False))
            sign, _ = np.linalg.slogdet(cov)
            if sign <= 0:
                singular.append(int(cl.index))
            cl.stats, cl.nbands = GaussianStats(zc.mean(axis=0), cov, len(zc)), d
            cl.stats_valid(True)
        if singular:
            raise InputError(
                "Gaussian maximum likelihood cannot model "
                + ", ".join(class_label(c, self.class_names) for c in singular)
                + f": the covariance of its training pixels in {d} principal component{'s' * (d != 1)} is "
                "singular (repeated spectra?); give it more, different training pixels or use --method svm "
                "or cnn"
            )
        self.classifier = spectral.GaussianClassifier(classes, min_samples=d + 1)
        modelled = {int(c.index) for c in self.classifier.classes}
        missing = [int(c) for c in classes_present if int(c) not in modelled]
        if missing:  # spectral leaves out a class with fewer than min_samples pixels, and only logs it
            raise InputError("Gaussian maximum likelihood could not model "
                             + ", ".join(class_label(c, self.class_names) for c in missing))

    def predict_pixels(self, x: np.ndarray) -> np.ndarray:
        z = self.pca.transform(x).astype(np.float64)[None]
        return self.classifier.classify_image(z)[0]

    def describe(self) -> dict:
        """The number of principal components used."""
        return {"components": int(self.pca.n_components_)}


def class_label(c: int, names: list[str] | None) -> str:
    """'class 3' or 'class 3 (Cotton)' when the class names are known (class ids start at 1)."""
    named = names is not None and 0 < c <= len(names) and names[c - 1] != f"Class {c}"
    return f"class {c} ({names[c - 1]})" if named else f"class {c}"
