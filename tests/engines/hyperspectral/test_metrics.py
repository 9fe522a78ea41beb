"""OA, AA, kappa, per-class accuracy and confusion matrix against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from engines.hyperspectral.metrics import accuracy_report


def test_hand_computed_example() -> None:
    # truth 1 1 1 2 2 3, predicted 1 1 2 2 3 3:
    # OA = 4/6; recalls 2/3, 1/2, 1/1 -> AA = 13/18;
    # kappa: p_o = 4/6, p_e = (3*2 + 2*2 + 1*2) / 36 = 1/3 -> (2/3 - 1/3) / (1 - 1/3) = 1/2.
    r = accuracy_report(np.array([1, 1, 1, 2, 2, 3]), np.array([1, 1, 2, 2, 3, 3]), ["a", "b", "c"])
    assert r["OA"] == pytest.approx(4 / 6)
    assert r["AA"] == pytest.approx(13 / 18)
    assert r["kappa"] == pytest.approx(0.5)
    assert r["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 1.0})
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_class_without_test_pixels_is_left_out_of_aa() -> None:
    # class "b" never in the truth (but predicted once): OA 3/4, AA over a and c = (2/3 + 1) / 2.
    r = accuracy_report(np.array([1, 1, 1, 3]), np.array([1, 1, 2, 3]), ["a", "b", "c"])
    assert r["per_class_accuracy"]["b"] is None
    assert r["AA"] == pytest.approx((2 / 3 + 1) / 2)
    assert r["OA"] == pytest.approx(3 / 4)
    # kappa by hand: p_o = 3/4; truth counts a3 b0 c1, predicted a2 b1 c1 -> p_e = (6 + 0 + 1) / 16 = 7/16
    assert r["kappa"] == pytest.approx((3 / 4 - 7 / 16) / (1 - 7 / 16))


def test_perfect_and_empty() -> None:
    r = accuracy_report(np.array([1, 2, 2]), np.array([1, 2, 2]), ["a", "b"])
    assert r["OA"] == r["AA"] == r["kappa"] == 1.0
    with pytest.raises(ValueError, match="equally many"):
        accuracy_report(np.array([1, 2]), np.array([1]), ["a", "b"])


def test_repeated_class_names_keep_every_class() -> None:
    r = accuracy_report(np.array([1, 2, 3]), np.array([1, 1, 3]), ["Road", "Road", "C"])
    assert r["per_class_accuracy"] == {"Road (1)": 1.0, "Road (2)": 0.0, "C": 1.0}
