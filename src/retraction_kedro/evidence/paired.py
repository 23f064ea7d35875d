"""Two binary outcomes on the same examples (an intervention and its baseline, a fine-tuned model and its base).

The difference in rate (treatment - baseline) with a paired percentile-bootstrap interval over examples, and
the exact McNemar test on the discordant pairs. Without discordant pairs the difference is 0, its interval
[0, 0] and p = 1: defined, and no evidence of a change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

from .bootstrap import percentile_interval, resample_counts
from .schema import as_bools, estimate


def _paired_columns(baseline: np.ndarray, treatment: np.ndarray, seed: int, resamples: int) -> list[dict]:
    """[N, L] outcomes -> one estimate per column; all columns share the resamples."""
    n = len(baseline)
    if n == 0:
        return [estimate(None, 0, p_value=None, baseline_only=0, treatment_only=0) for _ in range(baseline.shape[1])]
    change = treatment.astype(np.float64) - baseline.astype(np.float64)
    resampled = resample_counts(n, resamples, seed) @ change / n  # float: BLAS, and exact for these small integers
    low, high = percentile_interval(resampled)
    rows = []
    for column in range(baseline.shape[1]):
        b, t = baseline[:, column], treatment[:, column]
        table = [[int((b & t).sum()), int((b & ~t).sum())], [int((~b & t).sum()), int((~b & ~t).sum())]]
        rows.append(estimate(change[:, column].mean(), n, low[column], high[column],
                             p_value=mcnemar(table, exact=True).pvalue,
                             baseline_only=table[0][1], treatment_only=table[1][0]))  # fmt: skip
    return rows


def _outcomes(baseline: Any, treatment: Any, mask: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    baseline, treatment = as_bools(baseline, "baseline"), as_bools(treatment, "treatment")
    if baseline.shape != treatment.shape or baseline.ndim != ndim:
        raise ValueError(
            f"baseline and treatment must be {ndim}-D of one shape, got {baseline.shape} and {treatment.shape}"
        )
    if mask is not None:
        mask = as_bools(mask, "mask")
        if mask.shape != baseline.shape[:1]:
            raise ValueError(f"mask must have one entry per example ({len(baseline)}), got shape {mask.shape}")
        baseline, treatment = baseline[mask], treatment[mask]
    return (baseline[:, None], treatment[:, None]) if ndim == 1 else (baseline, treatment)


def paired_difference(baseline: Any, treatment: Any, *, seed: int, mask: Any = None, resamples: int = 1000) -> dict:
    """Rate of treatment minus rate of baseline over the examples in mask (all by default).

    Returns an estimate with ``p_value`` (exact McNemar), ``baseline_only`` (examples positive only at
    baseline) and ``treatment_only``; everything undefined (None) when the mask selects no example.
    For retraction recall, mask = the wrong answers.
    """
    return _paired_columns(*_outcomes(baseline, treatment, mask, 1), seed, resamples)[0]


def paired_difference_by_layer(baseline: Any, treatment: Any, *, seed: int, resamples: int = 1000) -> list[dict]:
    """Per layer of two [N, L] outcomes (e.g. each probe's per-example correctness), as ``paired_difference``."""
    return _paired_columns(*_outcomes(baseline, treatment, None, 2), seed, resamples)


def retraction_differences(correct: Any, baseline_retracted: Any, treatment_retracted: Any, *, seed: int,
                           resamples: int = 1000) -> dict:  # fmt: skip
    """An intervention against its baseline on the same continuations: recall (over wrong answers) and rate."""
    wrong = ~as_bools(correct, "correct")
    return {
        "retraction_recall": paired_difference(baseline_retracted, treatment_retracted, seed=seed, mask=wrong,
                                               resamples=resamples),
        "retraction_rate": paired_difference(baseline_retracted, treatment_retracted, seed=seed, resamples=resamples),
    }  # fmt: skip
