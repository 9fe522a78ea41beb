"""SVM and Gaussian ML: better than chance on a tiny scene, and equal to independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from engines.errors import InputError
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


def _rare_class_cube(n_rare: int, seed: int = 0):
    """Two large classes and a third of `n_rare` pixels, spectrally distinct (SYNTHETIC, 40 x 30 x 10)."""
    from engines.cube import Cube

    rng = np.random.default_rng(seed)
    gt = np.zeros((40, 30), np.int32)
    gt[:20], gt[20:] = 1, 2
    gt[5, 5 : 5 + n_rare] = 3
    data = (rng.random((4, 10))[gt] * 100 + rng.normal(0, 5, (40, 30, 10))).astype(np.float32)
    return Cube(data=data, labels=gt, class_names=["Corn", "Cotton", "Sesame"], source="rare.mat")


@pytest.mark.parametrize("n_rare", [1, 2, 3])
def test_gmlc_refuses_a_class_with_one_training_pixel_and_names_it(n_rare: int) -> None:
    cube = _rare_class_cube(n_rare)
    split = split_for(cube, per_class=25, seed=0)
    assert split.counts(3)[0][2] == 1
    with pytest.raises(InputError, match=r"class 3 \(Sesame\) has 1 training pixel.*at least 2") as err:
        run_protocol(cube, "gmlc", split, seed=0)
    assert err.value.path == "rare.mat"


@pytest.mark.parametrize("n_rare", [4, 5])
def test_gmlc_models_a_class_with_two_training_pixels_with_fewer_components_and_says_so(n_rare: int) -> None:
    cube = _rare_class_cube(n_rare)
    split = split_for(cube, per_class=25, seed=0)
    result, class_map = run_protocol(cube, "gmlc", split, seed=0)
    assert result["train_counts"][2] == 2 and result["settings"]["components"] == 1
    assert 3 in np.unique(class_map[split.test > 0])  # the rare class is in the model: it is predicted
    assert result["per_class_accuracy"]["Sesame"] > 0
    assert any("1 principal component instead of 2" in n and "class 3 (Sesame)" in n for n in result["notes"])


def test_gmlc_refuses_a_class_whose_training_spectra_are_all_the_same() -> None:
    cube = _rare_class_cube(8)
    cube.data[5, 5:13] = cube.data[5, 5]
    with pytest.raises(InputError, match=r"class 3 \(Sesame\).*singular"):
        run_protocol(cube, "gmlc", split_for(cube, per_class=25, seed=0), seed=0)


def test_svm_says_when_and_why_it_skipped_the_grid_search() -> None:
    cube = _rare_class_cube(1)
    result, _ = run_protocol(cube, "svm", split_for(cube, per_class=25, seed=0), seed=0, quick=True)
    assert "class 3 (Sesame) has 1 training pixel" in result["grid_search_skipped"]
    assert any(n.startswith("SVM grid search skipped") for n in result["notes"])
    assert result["settings"] == {"C": 100.0, "gamma": "scale"}
    cube = _rare_class_cube(5)
    result, _ = run_protocol(cube, "svm", split_for(cube, per_class=25, seed=0), seed=0, quick=True)
    assert result["grid_search_skipped"] is None
    assert any("2-fold instead of 3-fold" in n for n in result["notes"])
