"""Proportions with their n and 95% Wilson interval (defined at k = 0 and k = n, unlike the normal one)."""

from __future__ import annotations

from typing import Any

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from .bootstrap import LEVEL
from .schema import as_bools, estimate


def proportions(k: Any, n: Any) -> list[dict]:
    """One estimate per entry of k (counts of successes) out of n (scalar or per entry); n = 0 is undefined."""
    k, n = np.broadcast_arrays(np.asarray(k), np.asarray(n))
    if k.ndim != 1:
        raise ValueError(f"k and n must be scalars or 1-D, got shape {k.shape}")
    if not (np.issubdtype(k.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
        raise ValueError(f"k and n must be integer counts, got {k.dtype} and {n.dtype}")
    if ((k < 0) | (k > n)).any():
        bad = int(np.argmax((k < 0) | (k > n)))
        raise ValueError(f"count {bad}: k={k[bad]} is not between 0 and n={n[bad]}")
    defined = n > 0
    low, high = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    if defined.any():
        low[defined], high[defined] = proportion_confint(k[defined], n[defined], alpha=1 - LEVEL, method="wilson")
    value = np.divide(k, n, out=np.full(k.shape, np.nan), where=defined)
    low, high = np.fmin(low, value), np.fmax(high, value)  # statsmodels' bound at k = n can fall 1e-16 short of 1
    return [estimate(v, n_, lo, hi, k=k_) for v, n_, lo, hi, k_ in zip(value, n, low, high, k)]


def proportion(k: int, n: int) -> dict:
    """``{"value": k/n, "n", "ci_low", "ci_high", "k"}``; value and interval None when n = 0."""
    return proportions([k], [n])[0]


def accuracy_by_layer(predicted: Any, labels: Any) -> list[dict]:
    """Per layer, the share of examples where predicted [N, L] matches labels [N], with Wilson intervals."""
    predicted, labels = as_bools(predicted, "predicted"), as_bools(labels, "labels")
    if predicted.ndim != 2 or labels.shape != predicted.shape[:1]:
        raise ValueError(f"predicted must be [N, L] and labels [N], got {predicted.shape} and {labels.shape}")
    hits = (predicted == labels[:, None]).sum(axis=0)
    return proportions(hits, len(labels))
