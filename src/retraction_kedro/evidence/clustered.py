"""A rate over repeated draws per example (sampled continuations, k seeds each): the draws of one example
are not independent, so the interval comes from resampling examples, not draws."""

from __future__ import annotations

from typing import Any

import numpy as np

from .bootstrap import percentile_interval, resample_counts
from .schema import as_bools, estimate


def clustered_proportion(outcomes: Any, *, seed: int, resamples: int = 1000) -> dict:
    """``outcomes [N, K]`` (example x draw) -> the pooled rate with a bootstrap interval over examples.

    ``n`` is the number of examples, ``draws`` the number of outcomes; undefined with no example.
    """
    values = as_bools(outcomes, "outcomes")
    if values.ndim != 2:
        raise ValueError(f"outcomes must be [examples, draws], got shape {values.shape}")
    n, draws = values.shape
    if n == 0 or draws == 0:
        return estimate(None, n, draws=n * draws, k=0)
    per_example = values.mean(axis=1)
    resampled = resample_counts(n, resamples, seed) @ per_example / n
    low, high = percentile_interval(resampled[:, None])
    return estimate(per_example.mean(), n, low[0], high[0], draws=n * draws, k=int(values.sum()))
