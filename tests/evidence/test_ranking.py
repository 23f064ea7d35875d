import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from retraction_kedro.evidence import auroc_by_layer
from retraction_kedro.evidence.bootstrap import resample_counts
from retraction_kedro.evidence.ranking import weighted_auroc

LABELS = np.array([False, False, True, False, True, True, False, True])


def test_perfect_inverted_and_constant_scorers():
    perfect = LABELS * 2.0 + np.arange(8) / 100  # every positive above every negative
    scores = np.stack([perfect, -perfect, np.zeros(8)], axis=1)
    values = [r["value"] for r in auroc_by_layer(scores, LABELS, seed=0)]
    assert values == [1.0, 0.0, 0.5]  # a constant scorer ties every pair: 0.5, not 0 or 1


def test_a_hand_counted_auroc_with_a_tie():
    # positives score 3, 2, 1; negatives 2, 0. Pairs (pos > neg): 3>2, 3>0, 2>0, 1>0, and 2=2 counts half: 4.5 of 6.
    scores = np.array([[3.0], [2.0], [1.0], [2.0], [0.0]])
    labels = np.array([True, True, True, False, False])
    assert auroc_by_layer(scores, labels, seed=0)[0]["value"] == pytest.approx(4.5 / 6)


def test_resampled_auroc_equals_scikit_learn_with_the_counts_as_weights():
    # The bootstrap's vectorized form must be the same statistic as the point estimate, ties included
    # (a version counting ties as hits or misses, or cumulating in the wrong direction, fails here).
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal(60), 1)  # rounding makes many ties
    labels = rng.random(60) < 0.3
    counts = resample_counts(60, 40, seed=5)
    expected = [roc_auc_score(labels, scores, sample_weight=row) if row[labels].sum() and row[~labels].sum() else np.nan
                for row in counts]  # fmt: skip
    np.testing.assert_allclose(weighted_auroc(counts, scores, labels), expected, rtol=0, atol=1e-12)


def test_interval_is_the_percentiles_of_every_resample():
    # n = 300 splits the 1000 resamples into chunks with a partial last one; dropping or misaligning a chunk fails.
    scores, labels = planted(300, 4)
    expected = np.stack([weighted_auroc(resample_counts(300, 1000, seed=2), scores[:, layer], labels)
                         for layer in range(4)], axis=1)  # fmt: skip
    low, high = np.quantile(expected, [0.025, 0.975], axis=0)
    result = auroc_by_layer(scores, labels, seed=2)
    np.testing.assert_allclose([[r["ci_low"], r["ci_high"]] for r in result], np.stack([low, high], 1), atol=1e-12)


def test_one_class_is_undefined_and_a_rare_class_counts_its_skipped_resamples():
    assert auroc_by_layer(np.ones((5, 2)), [True] * 5, seed=0)[1] == {
        "value": None, "n": 5, "ci_low": None, "ci_high": None, "positives": 5, "skipped_resamples": None,
    }  # fmt: skip
    labels = np.zeros(12, dtype=bool)
    labels[4] = True
    result = auroc_by_layer(np.random.default_rng(0).random((12, 3)), labels, seed=7, resamples=500)
    counts = resample_counts(12, 500, seed=7)
    assert result[0]["skipped_resamples"] == int((counts[:, 4] == 0).sum())  # resamples that missed the positive
    assert 100 < result[0]["skipped_resamples"] < 250  # (11/12)^12 = 35% of 500 miss it


def planted(n, seed):
    """Four layers whose scores separate the classes by 0, 0.5, 1 and 2 standard deviations."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    return rng.standard_normal((n, 4)) + labels[:, None] * np.array([0.0, 0.5, 1.0, 2.0]), labels


def test_intervals_contain_the_estimate_shrink_with_n_and_follow_the_seed():
    small, large = auroc_by_layer(*planted(100, 0), seed=1), auroc_by_layer(*planted(1600, 0), seed=1)
    for s, l in zip(small, large):
        assert s["ci_low"] < s["value"] < s["ci_high"]
        assert l["ci_low"] < l["value"] < l["ci_high"]
        width_ratio = (s["ci_high"] - s["ci_low"]) / (l["ci_high"] - l["ci_low"])
        assert 2.5 < width_ratio < 6  # 16x the examples: about 4x narrower
    assert large[0]["ci_low"] < 0.5 < large[0]["ci_high"]  # the uninformative layer's interval covers chance
    assert large[3]["ci_low"] > 0.85  # a 2-sd separation is ~0.92
    assert auroc_by_layer(*planted(100, 0), seed=1) == small
    assert auroc_by_layer(*planted(100, 0), seed=2) != small


def test_scores_must_be_finite_and_shaped_examples_by_layers():
    with pytest.raises(ValueError, match="non-finite"):
        auroc_by_layer(np.array([[np.nan], [1.0]]), [True, False], seed=0)
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        auroc_by_layer(np.zeros(4), [True, False, True, False], seed=0)
