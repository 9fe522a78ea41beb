"""SVM and Gaussian ML: better than chance on a tiny scene, and equal to independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from engines.hyperspectral.bench import make_classifier, run_protocol, split_for
from engines.hyperspectral.classifiers import GaussianMLClassifier, SVMClassifier, training_pixels
from engines.hyperspectral.protocol import Cancelled, gather, make_split


@pytest.fixture(scope="module")
def split(small_scene):
    return make_split(small_scene.labels, per_class=10, seed=0)


@pytest.mark.parametrize("method", ["svm", "gmlc"])
def test_beats_chance(small_scene, split, method: str) -> None:
    result, class_map = run_protocol(small_scene, method, split, seed=0, quick=True)
    assert result["OA"] > 3 / len(small_scene.class_names)  # three times chance
    assert result["kappa"] > 0.3
    test = split.test > 0
    assert np.all(class_map[test] > 0) and np.all(class_map[~test] == 0)  # only test pixels predicted
    assert set(result) >= {"method", "per_class_train", "OA", "AA", "kappa", "per_class_accuracy", "seconds"}
    assert result["per_class_train"] == 10


def test_svm_map_equals_scikit_learn_on_the_pixels(small_scene, split) -> None:
    keep = np.ones(small_scene.shape[2], bool)
    clf = SVMClassifier(seed=0, quick=True).fit(small_scene.data, split.train, keep)
    assert set(clf.describe()) == {"C", "gamma"} and clf.describe()["C"] in SVMClassifier.C_GRID
    mask = split.test > 0
    class_map = clf.predict(small_scene.data, keep, mask=mask)
    np.testing.assert_array_equal(class_map[mask], clf.model.predict(gather(small_scene.data, mask, keep)))


def test_gaussian_ml_equals_the_discriminant_by_hand(small_scene, split) -> None:
    """spectral's GaussianClassifier vs numpy: argmax of log prior - log|S|/2 - Mahalanobis^2 / 2."""
    keep = np.ones(small_scene.shape[2], bool)
    clf = GaussianMLClassifier(seed=0).fit(small_scene.data, split.train, keep)
    x, y = training_pixels(small_scene.data, split.train, keep)
    z = clf.pca.transform(x)
    assert z.shape[1] == clf.describe()["components"] == 3  # 10 per class // 3
    mask = split.test > 0
    zt = clf.pca.transform(gather(small_scene.data, mask, keep))
    scores = []
    for c in np.unique(y):
        zc = z[y == c]
        cov = np.cov(zc, rowvar=False)
        d = zt - zc.mean(0)
        maha = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
        scores.append(np.log(np.mean(y == c)) - 0.5 * np.linalg.slogdet(cov)[1] - 0.5 * maha)
    expected = np.unique(y)[np.argmax(scores, axis=0)]
    np.testing.assert_array_equal(clf.predict(small_scene.data, keep, mask=mask)[mask], expected)


def test_bad_bands_are_left_out(small_scene, split) -> None:
    cube = small_scene
    cube_bad = type(cube)(**{**cube.__dict__, "bad_bands": np.arange(cube.shape[2]) % 2 == 1})
    result, _ = run_protocol(cube_bad, "gmlc", split, seed=0)
    assert result["OA"] > 0.3


def test_official_split_missing(small_scene) -> None:
    from engines.errors import InputError

    with pytest.raises(InputError, match=r"no official split file Train25\.mat"):
        split_for(small_scene, official=25)


def test_cancel_during_prediction(small_scene, split) -> None:
    keep = np.ones(small_scene.shape[2], bool)
    clf = make_classifier("gmlc").fit(small_scene.data, split.train, keep)
    stages = []
    with pytest.raises(Cancelled):
        clf.predict(
            small_scene.data,
            keep,
            progress=lambda s, i, n: stages.append((s, i)),
            stop=lambda: len(stages) >= 2,
        )
    assert stages == [("predicting", 16), ("predicting", 32)]


def test_svm_grid_search_picks_what_grid_search_cv_picks_and_stops_between_pairs(small_scene, split) -> None:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    keep = np.ones(small_scene.shape[2], bool)
    x, y = training_pixels(small_scene.data, split.train, keep)
    stages = []
    clf = SVMClassifier(seed=0, quick=True).fit(
        small_scene.data, split.train, keep, progress=lambda s, i, n: stages.append((s, i, n))
    )
    assert [s for s in stages if s[0] == "grid search"] == [("grid search", i, 4) for i in (1, 2, 3, 4)]
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC(kernel="rbf"))])
    grid = {"svc__C": SVMClassifier.C_GRID[1::2], "svc__gamma": SVMClassifier.GAMMA_GRID[1::2]}
    search = GridSearchCV(pipe, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(x, y)
    assert clf.describe() == {k.removeprefix("svc__"): v for k, v in search.best_params_.items()}

    pairs = []
    with pytest.raises(Cancelled, match=r"grid search \(1/4\)"):
        SVMClassifier(seed=0, quick=True).fit(
            small_scene.data,
            split.train,
            keep,
            progress=lambda s, i, n: pairs.append(i) if s == "grid search" else None,
            stop=lambda: len(pairs) >= 1,
        )
    assert pairs == [1]


@pytest.mark.parametrize("method", ["gmlc", "cnn"])
def test_class_ids_past_255_are_not_wrapped(small_scene, method: str) -> None:
    """Ground truth with ids such as 300: the map is wide enough to hold them (uint8 would give 44)."""
    labels = np.where(small_scene.labels == 3, 300, small_scene.labels.astype(np.int32))
    names = [f"c{c}" for c in range(1, 301)]
    cube = type(small_scene)(**{**small_scene.__dict__, "labels": labels, "class_names": names})
    split = make_split(labels, per_class=10, seed=0)
    result, class_map = run_protocol(cube, method, split, seed=0, quick=True)
    assert class_map.dtype == np.uint16
    assert set(np.unique(class_map[split.test > 0])) <= set(np.unique(labels)) - {0}
    assert 300 in class_map and result["per_class_accuracy"]["c300"] is not None
