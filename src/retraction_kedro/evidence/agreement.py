"""Agreement of a rater (a judge) with a reference (human labels, or another judge) on binary labels."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from .bootstrap import percentile_interval, resample_counts
from .intervals import proportion
from .schema import as_bools, estimate


def weighted_kappa(counts: np.ndarray, reference: np.ndarray, rater: np.ndarray) -> np.ndarray:
    """Cohen's kappa under each row of example weights: [R, N] counts -> [R], NaN where undefined.

    What ``cohen_kappa_score(reference, rater, sample_weight=row)`` gives, from each row's 2x2 table at once
    (kappa = (n * agreed - chance) / (n^2 - chance), chance = sum over labels of the two raters' marginals).
    """
    cells = counts @ np.stack([reference & rater, reference & ~rater, ~reference & rater, ~reference & ~rater], 1)
    both, reference_only, rater_only, neither = cells.T
    n = cells.sum(axis=1)
    chance = (both + reference_only) * (both + rater_only) + (neither + rater_only) * (neither + reference_only)
    return np.divide(n * (both + neither) - chance, n**2 - chance, out=np.full(len(counts), np.nan),
                     where=n**2 != chance)  # fmt: skip


def agreement(reference: Any, rater: Any, *, seed: int, resamples: int = 1000) -> dict:
    """Precision and recall of the rater against the reference (Wilson), raw agreement, and Cohen's kappa.

    Kappa's interval is a percentile bootstrap over examples; resamples where it is undefined are skipped and
    counted (``skipped_resamples``). Kappa is undefined when both raters give one and the same label to every
    example (chance agreement is 1): scikit-learn returns NaN there with a warning, this returns None.
    Also returns the 2x2 counts ``both``, ``reference_only``, ``rater_only``, ``neither`` and ``examples``.
    """
    reference, rater = as_bools(reference, "reference"), as_bools(rater, "rater")
    if reference.shape != rater.shape or reference.ndim != 1:
        raise ValueError(f"reference and rater must be 1-D of one length, got {reference.shape} and {rater.shape}")
    n = len(reference)
    counts = {
        "both": int((reference & rater).sum()), "reference_only": int((reference & ~rater).sum()),
        "rater_only": int((~reference & rater).sum()), "neither": int((~reference & ~rater).sum()),
    }  # fmt: skip
    constant_alike = n == 0 or len(np.unique(np.concatenate([reference, rater]))) == 1
    if constant_alike:
        kappa = estimate(None, n, skipped_resamples=None)
    else:
        resampled = weighted_kappa(resample_counts(n, resamples, seed), reference, rater)
        low, high = percentile_interval(resampled[:, None])
        value = cohen_kappa_score(reference, rater, labels=[False, True])
        kappa = estimate(value, n, low[0], high[0], skipped_resamples=int(np.isnan(resampled).sum()))
    return {
        "precision": proportion(counts["both"], counts["both"] + counts["rater_only"]),
        "recall": proportion(counts["both"], counts["both"] + counts["reference_only"]),
        "agreement": proportion(counts["both"] + counts["neither"], n),
        "kappa": kappa,
        "examples": n,
        **counts,
    }
