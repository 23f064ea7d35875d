import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from retraction_kedro.evidence import agreement, proportion
from retraction_kedro.evidence.agreement import weighted_kappa
from retraction_kedro.evidence.bootstrap import resample_counts


def labels(both, reference_only, rater_only, neither):
    reference = [True] * (both + reference_only) + [False] * (rater_only + neither)
    rater = [True] * both + [False] * reference_only + [True] * rater_only + [False] * neither
    return np.array(reference), np.array(rater)


def test_precision_recall_and_kappa_by_hand():
    # 50 examples: observed agreement 35/50 = 0.7; chance 0.6 * 0.5 + 0.4 * 0.5 = 0.5; kappa (0.7 - 0.5) / 0.5 = 0.4.
    result = agreement(*labels(20, 10, 5, 15), seed=0)
    assert result["kappa"]["value"] == pytest.approx(0.4)
    assert result["precision"] == proportion(20, 25)  # the rater's positives the reference confirms
    assert result["recall"] == proportion(20, 30)  # the reference's positives the rater finds
    assert result["agreement"] == proportion(35, 50)
    assert (result["both"], result["reference_only"], result["rater_only"], result["neither"]) == (20, 10, 5, 15)
    assert result["kappa"]["ci_low"] < 0.4 < result["kappa"]["ci_high"]


def test_kappa_is_undefined_only_when_both_raters_give_one_same_label():
    # scikit-learn returns NaN here (and warns); the report must show undefined, not NaN or 0.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scikit-learn warning leaks from a handled case
        same = agreement([True] * 6, [True] * 6, seed=0)
        opposite = agreement([True] * 6, [False] * 6, seed=0)
    assert same["kappa"]["value"] is None and same["kappa"]["ci_low"] is None
    assert same["precision"] == proportion(6, 6)
    assert opposite["kappa"]["value"] == 0.0  # chance agreement 0, observed 0: defined
    assert opposite["precision"]["value"] is None  # the rater never says yes


def test_resampled_kappa_equals_scikit_learn_with_the_counts_as_weights():
    rng = np.random.default_rng(2)
    reference = rng.random(30) < 0.3
    rater = np.where(rng.random(30) < 0.2, ~reference, reference)
    counts = resample_counts(30, 50, seed=1)
    expected = [cohen_kappa_score(reference, rater, sample_weight=row) for row in counts]
    np.testing.assert_allclose(weighted_kappa(counts, reference, rater), expected, rtol=0, atol=1e-12)


def test_resamples_where_kappa_is_undefined_are_skipped_and_counted():
    # One disagreement among 9 agreeing positives: a resample that misses example 9 is constant for both raters.
    reference, rater = np.ones(10, dtype=bool), np.ones(10, dtype=bool)
    rater[9] = False
    result = agreement(reference, rater, seed=4, resamples=400)
    assert result["kappa"]["skipped_resamples"] == int((resample_counts(10, 400, seed=4)[:, 9] == 0).sum())
    assert result["kappa"]["value"] == 0.0


def test_kappa_interval_shrinks_with_n_and_follows_the_seed():
    small, large = agreement(*labels(20, 10, 5, 15), seed=1), agreement(*labels(320, 160, 80, 240), seed=1)
    assert large["kappa"]["value"] == pytest.approx(0.4)
    width = {name: r["kappa"]["ci_high"] - r["kappa"]["ci_low"] for name, r in (("small", small), ("large", large))}
    assert 3 < width["small"] / width["large"] < 5.5  # 16x the examples: about 4x narrower
    assert agreement(*labels(20, 10, 5, 15), seed=1) == small
    assert agreement(*labels(20, 10, 5, 15), seed=2) != small


def test_raters_of_different_lengths_are_rejected():
    with pytest.raises(ValueError, match="reference and rater"):
        agreement([True, False], [True], seed=0)
