"""AUROC per layer with a percentile-bootstrap interval over examples."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from .bootstrap import percentile_interval, resample_counts
from .schema import as_bools, estimate

CHUNK_ELEMENTS = 2**17  # resamples x examples per pass: the working arrays stay in cache (2x faster at N = 1500)


def weighted_auroc(counts: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of one score column under each row of example weights: [R, N] counts, [N] scores -> [R].

    What ``roc_auc_score(labels, scores, sample_weight=row)`` gives (ties count half), for all rows at once:
    sort once, sum each tie group's positive and negative weight, and count for each positive the negative
    weight below it (plus half the tied weight). Calling scikit-learn per resample and layer was ~75x slower
    (benchmarks/evidence.py): minutes for 30 layers x 1000 resamples.
    Rows without a positive or a negative give NaN.
    """
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    positive = counts[:, order] * labels[order]
    negative = counts[:, order] - positive
    if (ranked[1:] == ranked[:-1]).any():  # tie groups (skipped without ties: the pass costs as much as the rest)
        groups = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        positive, negative = np.add.reduceat(positive, groups, axis=1), np.add.reduceat(negative, groups, axis=1)
    below = np.cumsum(negative, axis=1) - negative
    twice_hits = (positive * (2 * below + negative)).sum(axis=1)
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    return np.divide(twice_hits, 2 * pairs, out=np.full(len(counts), np.nan), where=pairs > 0)


def auroc_by_layer(scores: Any, labels: Any, *, seed: int, resamples: int = 1000) -> list[dict]:
    """Per layer of scores [N, L] (higher = positive): AUROC of labels [N] and its bootstrap interval.

    Each estimate has ``positives`` and ``skipped_resamples`` (resamples that drew one class only, left out
    of the percentiles). Undefined (None) when labels hold one class.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), as_bools(labels, "labels")
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores must be [N, L] and labels [N], got {scores.shape} and {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} non-finite values")
    n, positives = len(labels), int(labels.sum())
    if positives in (0, n):
        return [estimate(None, n, positives=positives, skipped_resamples=None) for _ in range(scores.shape[1])]
    # int32 halves the memory traffic and is exact while every product stays below 2 n^2 < 2^31
    counts = resample_counts(n, resamples, seed).astype(np.int32 if 2 * n * n < 2**31 else np.int64)
    rows = max(1, CHUNK_ELEMENTS // n)
    resampled = np.concatenate([
        np.stack([weighted_auroc(counts[start:start + rows], scores[:, layer], labels)
                  for layer in range(scores.shape[1])], axis=1)
        for start in range(0, resamples, rows)
    ])  # fmt: skip
    low, high = percentile_interval(resampled)
    skipped = int(np.isnan(resampled[:, 0]).sum())
    return [
        estimate(roc_auc_score(labels, scores[:, layer]), n, low[layer], high[layer], positives=positives,
                 skipped_resamples=skipped)
        for layer in range(scores.shape[1])
    ]  # fmt: skip
