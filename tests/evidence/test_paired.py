from math import comb

import numpy as np
import pytest

from retraction_kedro.evidence import paired_difference, paired_difference_by_layer, retraction_differences


def outcomes(both, baseline_only, treatment_only, neither):
    baseline = [True] * both + [True] * baseline_only + [False] * treatment_only + [False] * neither
    treatment = [True] * both + [False] * baseline_only + [True] * treatment_only + [False] * neither
    return np.array(baseline), np.array(treatment)


def exact_mcnemar_by_hand(b, c):
    """Two-sided: twice the binomial(b + c, 1/2) tail at min(b, c), at most 1."""
    m = b + c
    return min(1.0, 2 * sum(comb(m, i) for i in range(min(b, c) + 1)) / 2**m)


@pytest.mark.parametrize("b, c", [(1, 5), (0, 4), (3, 3), (2, 9)])
def test_exact_mcnemar_p_value_and_difference_by_hand(b, c):
    # (1, 5): 2 * (1 + 6) / 64 = 0.21875; the chi-square approximation would give 0.10.
    result = paired_difference(*outcomes(7, b, c, 11), seed=0)
    assert result["p_value"] == pytest.approx(exact_mcnemar_by_hand(b, c))
    assert result["value"] == pytest.approx((c - b) / (18 + b + c))  # treatment minus baseline, not the reverse
    assert (result["baseline_only"], result["treatment_only"], result["n"]) == (b, c, 18 + b + c)


def test_no_discordant_pair_is_defined_as_no_change():
    assert paired_difference(*outcomes(4, 0, 0, 6), seed=0) == {
        "value": 0.0, "n": 10, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "baseline_only": 0, "treatment_only": 0,
    }  # fmt: skip


def test_the_mask_restricts_to_its_examples_and_an_empty_mask_is_undefined():
    baseline, treatment = outcomes(2, 1, 6, 11)  # treatment_only examples are indices 3..8
    mask = np.zeros(20, dtype=bool)
    mask[[0, 2, 3, 4, 15]] = True  # both, baseline_only, treatment_only x2, neither
    result = paired_difference(baseline, treatment, mask=mask, seed=0)
    assert (result["n"], result["value"], result["baseline_only"], result["treatment_only"]) == (5, 1 / 5, 1, 2)
    assert paired_difference(baseline, treatment, mask=np.zeros(20, dtype=bool), seed=0)["value"] is None


def test_retraction_differences_take_recall_over_the_wrong_answers_only():
    correct = np.array([True, True, False, False, False, False])
    baseline = np.array([False, False, False, False, True, False])
    treatment = np.array([True, True, True, False, True, False])  # two new retractions of correct answers
    result = retraction_differences(correct, baseline, treatment, seed=0)
    assert (result["retraction_recall"]["n"], result["retraction_recall"]["value"]) == (4, 1 / 4)
    assert (result["retraction_rate"]["n"], result["retraction_rate"]["value"]) == (6, 3 / 6)


def test_bootstrap_interval_matches_the_normal_width_contains_the_estimate_and_follows_the_seed():
    # 400 pairs, 60 gained and 20 lost: sd of the per-example change is sqrt(0.2 - 0.1^2), so the 95% half width
    # is about 1.96 * 0.436 / 20 = 0.043. Dividing by the wrong n, or resampling the two arms apart, misses this.
    rng = np.random.default_rng(0)
    order = rng.permutation(400)
    baseline, treatment = (x[order] for x in outcomes(100, 20, 60, 220))
    result = paired_difference(baseline, treatment, seed=3)
    assert result["value"] == pytest.approx(0.1)
    assert result["ci_low"] < result["value"] < result["ci_high"]
    assert (result["ci_high"] - result["ci_low"]) / 2 == pytest.approx(1.96 * np.sqrt(0.2 - 0.01) / 20, rel=0.12)
    small = paired_difference(*outcomes(25, 5, 15, 55), seed=3)
    assert (small["ci_high"] - small["ci_low"]) > 1.6 * (result["ci_high"] - result["ci_low"])  # 4x fewer: ~2x wider
    assert paired_difference(baseline, treatment, seed=3) == result
    assert paired_difference(baseline, treatment, seed=4) != result


def test_by_layer_is_each_column_compared_on_the_same_resamples():
    rng = np.random.default_rng(1)
    a, b = rng.random((80, 3)) < 0.6, rng.random((80, 3)) < 0.7
    by_layer = paired_difference_by_layer(a, b, seed=9)
    assert by_layer == [paired_difference(a[:, layer], b[:, layer], seed=9) for layer in range(3)]


def test_outcomes_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="one shape"):
        paired_difference([True, False], [True], seed=0)
    with pytest.raises(ValueError, match="mask"):
        paired_difference([True, False], [True, True], mask=[True], seed=0)
