"""Video-level accuracy metrics: top-k, confusion matrix, per-class and mean class accuracy.

Pure numpy on (N, K) score arrays (logits or probabilities: only the ranking matters) and
(N,) integer labels. Ranking ties break towards the lower class index, as ``argmax`` does.
Videos with an unknown label (-1, e.g. the Kinetics test set) are left out of every metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ranked_classes(scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Class indices sorted by decreasing score, shape (N, k); ``k`` is clipped to K."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {scores.shape}")
    order = np.argsort(-scores, axis=1, kind="stable")
    return order if k is None else order[:, : max(1, min(k, scores.shape[1]))]


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,): whether each label is among its row's top ``k`` classes (k clipped to K)."""
    labels = np.asarray(labels)
    top = ranked_classes(scores, k)
    return (top == labels[:, None]).any(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of labelled rows whose label is in the top ``k``; NaN when there are none."""
    scores, labels = _labelled(scores, labels)
    if len(labels) == 0:
        return float("nan")
    return float(topk_correct(scores, labels, k).mean())


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class (unknown labels skipped)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    keep = labels >= 0
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (labels[keep], predicted[keep]), 1)
    return out


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (K,): diagonal / row sum; NaN for a class with no videos."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class accuracies over the classes that have at least one video."""
    acc = per_class_accuracy(confusion)
    present = ~np.isnan(acc)
    return float(acc[present].mean()) if present.any() else float("nan")


def summarize(scores: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> dict[str, Any]:
    """top1, top5, mean class accuracy (fractions), video counts and the confusion matrix."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = scores.shape[1] if num_classes is None else num_classes
    predicted = ranked_classes(scores, 1)[:, 0] if len(scores) else np.zeros(0, np.int64)
    confusion = confusion_matrix(labels, predicted, num_classes)
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_acc": mean_class_accuracy(confusion),
        "videos": int(len(labels)),
        "labelled": int((labels >= 0).sum()),
        "confusion": confusion,
    }


def _labelled(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} do not match")
    keep = labels >= 0
    return scores[keep], labels[keep]
