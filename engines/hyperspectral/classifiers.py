"""Pixel classifiers of the protocol: RBF SVM (scikit-learn) and Gaussian maximum likelihood (spectral).

Every classifier has the same two steps, so the protocol and the dock treat them alike:

    clf.fit(data, train, keep, progress=..., stop=...)     # data (H, W, B) array-like, train (H, W) labels
    clf.predict(data, keep, mask=None, progress=..., stop=...) -> (H, W) class map (0 outside `mask`)

`keep` (B,) bool selects the bands to use (bad bands dropped). Prediction reads the cube in row blocks.
The spectral-spatial CNN lives in `engines.hyperspectral.cnn` and follows the same interface.
"""

from __future__ import annotations

import logging

import numpy as np
import spectral
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

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
    first pair with the best mean CV accuracy wins (as GridSearchCV picks). With fewer than 2 training
    pixels in some class the default C=100, gamma='scale' is used.
    """

    name = "svm"
    C_GRID = (1.0, 10.0, 100.0, 1000.0)
    GAMMA_GRID = (2.0**-12, 2.0**-10, 2.0**-8, 2.0**-6, 2.0**-4)

    def __init__(self, *, seed: int = 0, quick: bool = False, n_jobs: int = 1) -> None:
        self.seed, self.quick, self.n_jobs = seed, quick, n_jobs
        self.model: Pipeline | None = None
        self.best_params: dict = {}

    def fit_pixels(
        self, x: np.ndarray, y: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
    ) -> None:
        pipe = Pipeline(
            [("scale", StandardScaler()), ("svc", SVC(kernel="rbf", C=100.0, gamma="scale", cache_size=500))]
        )
        folds = min(3 if self.quick else 5, int(np.bincount(y)[np.unique(y)].min()))
        if folds < 2:
            self.model = pipe.fit(x, y)
            self.best_params = {"C": 100.0, "gamma": "scale"}
            return
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
        """The chosen hyper-parameters."""
        return dict(self.best_params)


class GaussianMLClassifier(PixelClassifier):
    """Gaussian maximum-likelihood classifier (`spectral.GaussianClassifier`) on principal components.

    With 25 pixels per class, a 270-band covariance cannot be estimated, so spectra are first reduced by
    a PCA fitted on the training pixels to d = clip(n_min // 3, 2, 20) components, n_min being the
    smallest training class. Classes are built with `spectral.create_training_classes`.
    """

    name = "gmlc"
    MAX_COMPONENTS = 20

    def __init__(self, *, seed: int = 0, quick: bool = False) -> None:
        self.seed = seed
        self.pca: PCA | None = None
        self.classifier: spectral.GaussianClassifier | None = None

    def fit_pixels(
        self, x: np.ndarray, y: np.ndarray, *, progress: Progress | None = None, stop: Stop | None = None
    ) -> None:
        n_min = int(np.bincount(y)[np.unique(y)].min())
        d = int(np.clip(n_min // 3, 2, self.MAX_COMPONENTS))
        d = min(d, x.shape[1], x.shape[0] - 1)
        self.pca = PCA(n_components=d, random_state=self.seed).fit(x)
        z = self.pca.transform(x)[None]  # spectral wants an image (rows, cols, bands)
        classes = spectral.create_training_classes(z, y[None], calc_stats=True)
        logging.getLogger("spectral").setLevel(logging.ERROR)  # it warns when it omits a tiny class
        self.classifier = spectral.GaussianClassifier(classes, min_samples=d + 1)

    def predict_pixels(self, x: np.ndarray) -> np.ndarray:
        z = self.pca.transform(x).astype(np.float64)[None]
        return self.classifier.classify_image(z)[0]

    def describe(self) -> dict:
        """The number of principal components used."""
        return {"components": int(self.pca.n_components_)}
