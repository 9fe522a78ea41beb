"""Pixels without data (ENVI's "data ignore value", NaN): neither trained on nor scored, 0 in the map."""

from __future__ import annotations

import numpy as np
import pytest

from engines.hyperspectral.bench import no_data_of, run_protocol, split_for
from engines.hyperspectral.protocol import make_split

IGNORE = -9999.0


def _with(cube, **changes):
    return type(cube)(**{**cube.__dict__, **changes})


@pytest.fixture(scope="module")
def holes(small_scene) -> np.ndarray:
    """A block of pixels (labelled ones among them) and a scattered few, the sensor's gaps."""
    mask = np.zeros(small_scene.shape[:2], bool)
    mask[10:22, 5:17] = True
    mask[::7, ::5] = True
    assert (mask & (small_scene.labels > 0)).sum() > 50
    return mask


@pytest.mark.parametrize("marker", ["ignore value", "nan"])
@pytest.mark.parametrize("method", ["svm", "gmlc", "cnn"])
def test_a_run_equals_one_on_the_measured_pixels_alone(small_scene, holes, marker: str, method: str) -> None:
    """The same result as for the cube whose gap pixels are simply unlabelled (their values never read)."""
    data = np.array(small_scene.data, dtype=np.float32)
    meta = dict(small_scene.meta)
    if marker == "nan":
        data[holes, 3] = np.nan  # one band missing is enough to be no data
    else:
        data[holes] = IGNORE
        meta["data_ignore_value"] = IGNORE
    gappy = _with(small_scene, data=data, meta=meta)
    no_data = no_data_of(gappy)
    np.testing.assert_array_equal(no_data, holes)

    split = split_for(gappy, per_class=10, seed=0, no_data=no_data)
    result, class_map = run_protocol(gappy, method, split, seed=0, quick=True, full_map=True, no_data=no_data)

    unlabelled = _with(small_scene, data=data if method != "cnn" else small_scene.data,
                       labels=np.where(holes, 0, small_scene.labels))
    reference = split_for(unlabelled, per_class=10, seed=0)
    np.testing.assert_array_equal(split.train, reference.train)
    np.testing.assert_array_equal(split.test, reference.test)
    assert result["no_data_pixels"] == holes.sum()
    assert result["no_data_labelled"] == (holes & (small_scene.labels > 0)).sum()
    assert np.all(class_map[holes] == 0) and np.all(class_map[~holes] > 0)
    if method != "cnn":  # pixel classifiers: exactly the run on the measured pixels
        expected, _ = run_protocol(unlabelled, method, reference, seed=0, quick=True)
        assert (result["OA"], result["kappa"]) == (expected["OA"], expected["kappa"])
    else:  # the CNN's patches see gaps as the training mean, not as -9999 or NaN
        assert np.isfinite(result["OA"]) and result["OA"] > 3 / len(small_scene.class_names)


def test_a_split_made_elsewhere_loses_its_gap_pixels_in_the_run(small_scene, holes) -> None:
    """`run_protocol` finds the gaps itself when the caller's split did not leave them out."""
    data = np.array(small_scene.data, dtype=np.float32)
    data[holes] = IGNORE
    gappy = _with(small_scene, data=data, meta={**small_scene.meta, "data_ignore_value": IGNORE})
    split = make_split(small_scene.labels, per_class=10, seed=0)
    result, class_map = run_protocol(gappy, "gmlc", split, seed=0)
    _, tests = split.without(holes).counts(len(small_scene.class_names))
    assert result["test_counts"] == tests.tolist()
    assert result["no_data_labelled"] == (holes & (split.train + split.test > 0)).sum() > 0
    assert np.all(class_map[holes] == 0)


def test_bad_bands_full_of_the_ignore_value_do_not_make_a_pixel_empty(small_scene) -> None:
    data = np.array(small_scene.data, dtype=np.float32)
    data[..., :5] = IGNORE
    bad = np.zeros(small_scene.shape[2], bool)
    bad[:5] = True
    cube = _with(small_scene, data=data, bad_bands=bad, meta={"data_ignore_value": IGNORE})
    assert not no_data_of(cube).any()
    assert no_data_of(_with(cube, bad_bands=None)).all()


def test_gap_pixels_of_split_files_are_counted_without_ground_truth(small_scene, holes, tmp_path) -> None:
    """Official Train/Test files and no ground truth: the labelled gap pixels are still counted."""
    import scipy.io

    split = make_split(small_scene.labels, per_class=10, seed=0)
    scipy.io.savemat(tmp_path / "Train10.mat", {"Train10": split.train})
    scipy.io.savemat(tmp_path / "Test10.mat", {"Test10": split.test})
    data = np.array(small_scene.data, dtype=np.float32)
    data[holes] = IGNORE
    gappy = _with(small_scene, data=data, labels=None, meta={"data_ignore_value": IGNORE})
    no_data = no_data_of(gappy)
    files = split_for(gappy, train_file=tmp_path / "Train10.mat", test_file=tmp_path / "Test10.mat",
                      no_data=no_data)
    result, _ = run_protocol(gappy, "gmlc", files, seed=0, no_data=no_data)
    assert result["no_data_labelled"] == (holes & (small_scene.labels > 0)).sum() > 0
