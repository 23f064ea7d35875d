"""Percentile bootstrap over examples, with resamples drawn as multiplicity counts.

A resample is a count per example (how often it was drawn), so a statistic of every resample and every
layer is a weighted sum: one matrix product rather than a Python loop over thousands of index arrays.
All layers share the same resamples, so their intervals come from one resampling of the examples.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] int: how often each of n examples is drawn, n draws with replacement per resample."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)


def percentile_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central 95% of the resampled statistics along axis 0, ignoring NaN (resamples where it is undefined).

    Columns with no defined resample give NaN, which the schema reports as undefined.
    """
    tail = (1 - LEVEL) / 2
    samples = np.asarray(samples, dtype=np.float64)
    defined = ~np.isnan(samples).all(axis=0)
    low = np.full(samples.shape[1:], np.nan)
    high = np.full(samples.shape[1:], np.nan)
    if defined.any():
        low[defined], high[defined] = np.nanquantile(samples[:, defined], [tail, 1 - tail], axis=0)
    return low, high
