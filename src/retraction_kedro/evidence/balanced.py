"""Balanced accuracy per layer with a percentile-bootstrap interval over examples.

The rule, as ``retraction_kedro.probes.binary_scores``: the mean of the accuracies on each class present in
the labels (scikit-learn's ``balanced_accuracy_score``, which with one class present gives that class's
accuracy and warns); undefined (None) with no examples. ``positives`` says how many examples are of class 1,
so a one-class value (positives 0 or n) can be told from a two-class one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bootstrap import percentile_interval, resample_counts
from .schema import as_bools, estimate


def _balanced(weights: np.ndarray, correct: np.ndarray, labels: np.ndarray, classes: list[bool]) -> np.ndarray:
    """[R, L] balanced accuracy under each row of example weights [R, N]; NaN in a row that lacks one of
    ``classes`` (the classes present in the whole sample)."""
    per_class = []
    for value in classes:
        member = (labels == value).astype(np.float64)
        total = weights @ member  # [R]
        hits = weights @ (correct & (labels == value)[:, None]).astype(np.float64)  # [R, L]
        per_class.append(np.divide(hits, total[:, None], out=np.full(hits.shape, np.nan), where=total[:, None] > 0))
    return np.mean(per_class, axis=0)  # NaN wherever one class was not drawn


def balanced_accuracy_by_layer(predicted: Any, labels: Any, *, seed: int, resamples: int = 1000) -> list[dict]:
    """Per layer of predicted [N, L]: balanced accuracy against labels [N], its bootstrap interval, ``positives``
    and ``skipped_resamples`` (resamples that missed a class the sample has, left out as for AUROC)."""
    predicted, labels = as_bools(predicted, "predicted"), as_bools(labels, "labels")
    if predicted.ndim != 2 or labels.shape != predicted.shape[:1]:
        raise ValueError(f"predicted must be [N, L] and labels [N], got {predicted.shape} and {labels.shape}")
    n, layers, positives = len(labels), predicted.shape[1], int(labels.sum())
    if n == 0:
        return [estimate(None, 0, positives=0, skipped_resamples=None) for _ in range(layers)]
    correct = predicted == labels[:, None]
    classes = sorted({bool(v) for v in labels})
    value = _balanced(np.ones((1, n)), correct, labels, classes)[0]
    counts = resample_counts(n, resamples, seed).astype(np.float64)  # counts up to n: exact in float64, and BLAS
    resampled = _balanced(counts, correct, labels, classes)
    low, high = percentile_interval(resampled)
    skipped = int(np.isnan(resampled[:, 0]).sum())
    return [
        estimate(value[layer], n, low[layer], high[layer], positives=positives, skipped_resamples=skipped)
        for layer in range(layers)
    ]
