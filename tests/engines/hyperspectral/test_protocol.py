"""Sampling of training pixels, split files, band masks and block-wise pixel access."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from engines.errors import InputError
from engines.hyperspectral.protocol import (
    Cancelled,
    band_mask,
    gather,
    make_split,
    report,
    row_blocks,
    sample_split,
)

LABELS = np.random.default_rng(0).choice([0, 1, 2, 3, 4], size=(40, 30), p=[0.2, 0.3, 0.3, 0.15, 0.05])
LABELS[0, :4] = 5  # a class with 4 pixels


def test_counts_per_class_and_disjoint() -> None:
    train, test = sample_split(LABELS, 25, seed=0)
    counts = np.bincount(train.ravel(), minlength=6)
    assert counts[1:5].tolist() == [25, 25, 25, 25]
    assert counts[5] == 2  # 4 pixels: half of them train, so the class keeps test pixels
    assert not np.any((train > 0) & (test > 0))
    np.testing.assert_array_equal(np.maximum(train, test), LABELS)  # together: every labelled pixel
    assert np.all(train[train > 0] == LABELS[train > 0])


def test_a_split_says_which_classes_were_too_small_for_the_count() -> None:
    split = make_split(LABELS, per_class=25, seed=0)
    assert split.description == ("25 random training pixels per class, seed 0; class 5 (4 pixels: 2 train, "
                                 "2 test) has fewer than 50 pixels and trains on half of them (rounded down, "
                                 "at least 1)")
    assert split.notes and split.notes[0] in split.description
    assert make_split(LABELS, per_class=2, seed=0).description == "2 random training pixels per class, seed 0"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 49])
def test_the_split_text_and_docstring_hold_for_every_small_class_size(size: int) -> None:
    """The counts the text gives are the drawn ones; a class keeps test pixels unless it has one pixel."""
    labels = np.zeros((20, 20), np.int32)
    labels[:10] = 1
    labels[10:].ravel()[:size] = 2
    split = make_split(labels, per_class=25, seed=0)
    train, test = split.counts(2)
    assert train[1] == max(1, size // 2) and test[1] == size - train[1]
    assert test[1] >= train[1] or size == 1
    told = f"class 2 ({size} pixel{'s' if size > 1 else ''}: {train[1]} train, {test[1]} test"
    assert told in split.description
    assert ("not scored" in split.description) == (size == 1)
    assert "half of them" not in split.description or train[1] <= size / 2 or size == 1


def test_a_one_pixel_class_is_named_even_when_it_meets_the_count() -> None:
    labels = np.ones((6, 6), np.int32)
    labels[0, 0] = 2
    split = make_split(labels, per_class=1, seed=0)
    assert split.counts(2)[1][1] == 0
    assert "class 2 (1 pixel: 1 train, 0 test: not scored)" in split.description


def test_seeded() -> None:
    a, _ = sample_split(LABELS, 10, seed=3)
    b, _ = sample_split(LABELS, 10, seed=3)
    c, _ = sample_split(LABELS, 10, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_per_class() -> None:
    with pytest.raises(ValueError, match="per_class"):
        sample_split(LABELS, 0)


def test_split_from_files(tmp_path: Path) -> None:
    train, test = sample_split(LABELS, 5, seed=1)
    scipy.io.savemat(tmp_path / "Train5.mat", {"Train5": train.astype(np.uint8)})
    scipy.io.savemat(tmp_path / "Test5.mat", {"Test5": test.astype(np.uint8)})
    split = make_split(LABELS, train_file=tmp_path / "Train5.mat", test_file=tmp_path / "Test5.mat")
    np.testing.assert_array_equal(split.train, train)
    np.testing.assert_array_equal(split.test, test)
    assert "Train5.mat" in split.description
    only_train = make_split(LABELS, train_file=tmp_path / "Train5.mat")
    np.testing.assert_array_equal(only_train.test, test)  # the rest of the ground truth
    assert split.counts(5)[0].tolist() == [5, 5, 5, 5, 2]


def test_split_files_that_disagree(tmp_path: Path) -> None:
    train, _ = sample_split(LABELS, 5, seed=1)
    scipy.io.savemat(tmp_path / "Train5.mat", {"Train5": train.astype(np.uint8)})
    scipy.io.savemat(tmp_path / "Test5.mat", {"Test5": LABELS.astype(np.uint8)})  # overlaps train
    with pytest.raises(InputError, match="share pixels"):
        make_split(LABELS, train_file=tmp_path / "Train5.mat", test_file=tmp_path / "Test5.mat")
    scipy.io.savemat(tmp_path / "Train9.mat", {"Train9": train[:-1].astype(np.uint8)})
    with pytest.raises(InputError, match="ground truth has shape 39x30 but the cube is 40x30"):
        make_split(LABELS, train_file=tmp_path / "Train9.mat")


def test_no_ground_truth() -> None:
    with pytest.raises(InputError, match="no ground truth"):
        make_split(None, per_class=5, source="cube.hdr")


def test_band_mask() -> None:
    assert band_mask(4, None).tolist() == [True] * 4
    assert band_mask(4, np.array([False, True, False, False])).tolist() == [True, False, True, True]
    with pytest.raises(InputError, match="every band"):
        band_mask(2, np.array([True, True]))


def test_blocks_and_gather_read_what_direct_indexing_reads() -> None:
    data = np.random.default_rng(1).integers(0, 100, size=(23, 7, 5)).astype(np.uint16)
    keep = np.array([True, False, True, True, False])
    seen = []
    blocks = list(row_blocks(data, keep, rows=5, progress=lambda *a: seen.append(a)))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), data[..., keep].astype(np.float32))
    assert [r0 for r0, _ in blocks] == [0, 5, 10, 15, 20]
    assert seen[-1] == ("reading", 23, 23)
    mask = LABELS[:23, :7] > 2
    np.testing.assert_array_equal(gather(data, mask, keep), data[mask][:, keep])


def test_stop_cancels() -> None:
    with pytest.raises(Cancelled, match="training"):
        report(None, lambda: True, "training", 3, 10)
    report(None, lambda: False, "training", 3, 10)
