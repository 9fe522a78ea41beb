"""Classification accuracy as the WHU-Hi papers report it: OA, AA, Cohen's kappa, per-class accuracy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix


def unique_names(class_names: Sequence[str]) -> list[str]:
    """`class_names` with each name that repeats followed by its class number ("Road (1)", "Road (2)"), so
    that no class hides another under one key."""
    counts = Counter(class_names)
    return [f"{name} ({c})" if counts[name] > 1 else name for c, name in enumerate(class_names, start=1)]


def accuracy_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    """Scores of predictions against the truth over classes 1..C (from scikit-learn).

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
        Classes 1..C of the test pixels (0 never appears in `y_true`).
    class_names : sequence of str
        Name of class c at index c - 1; C = len(class_names).

    Returns
    -------
    dict
        ``OA`` (fraction correct), ``AA`` (mean of per-class accuracies over the classes that have test
        pixels), ``kappa``, ``per_class_accuracy`` {name: recall, or None without test pixels; a name that
        repeats gets its class number, see `unique_names`},
        ``confusion_matrix`` (C, C) list of lists, rows = truth, columns = prediction.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"need equally many truths and predictions (>0), got {y_true.size} and {y_pred.size}"
        )
    classes = np.arange(1, len(class_names) + 1)
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(cm) / support, np.nan)
    return {
        "OA": float(accuracy_score(y_true, y_pred)),
        "AA": float(np.nanmean(recall)),
        "kappa": float(cohen_kappa_score(y_true, y_pred)),
        "per_class_accuracy": {
            name: (None if np.isnan(r) else float(r)) for name, r in zip(unique_names(class_names), recall,
                                                                          strict=True)
        },
        "confusion_matrix": cm.tolist(),
    }
