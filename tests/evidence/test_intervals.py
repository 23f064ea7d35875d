import math

import numpy as np
import pytest

from retraction_kedro.evidence import accuracy_by_layer, proportion, proportions

Z = 1.959963984540054  # standard normal 97.5% quantile


def wilson_by_hand(k, n):
    centre = (k + Z**2 / 2) / (n + Z**2)
    half = Z / (n + Z**2) * math.sqrt(k * (n - k) / n + Z**2 / 4)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (3, 10), (1, 16), (0, 1), (1, 1), (37, 120)])
def test_wilson_interval_matches_the_formula_including_k_0_and_k_n(k, n):
    # A normal (Wald) interval would collapse to [0, 0] / [1, 1] at k = 0 / k = n; a wrong alpha shifts both ends.
    result = proportion(k, n)
    low, high = wilson_by_hand(k, n)
    assert result["value"] == pytest.approx(k / n)
    assert (result["n"], result["k"]) == (n, k)
    assert result["ci_low"] == pytest.approx(max(low, 0.0), abs=1e-12)
    assert result["ci_high"] == pytest.approx(min(high, 1.0), abs=1e-12)


def test_wilson_closed_forms_at_the_ends():
    # At k = 0 the upper end is z^2 / (n + z^2); at k = n the lower end is n / (n + z^2).
    assert proportion(0, 20)["ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert proportion(0, 20)["ci_high"] == pytest.approx(Z**2 / (20 + Z**2))
    assert proportion(20, 20)["ci_low"] == pytest.approx(20 / (20 + Z**2))
    assert proportion(20, 20)["ci_high"] == pytest.approx(1.0, abs=1e-12)


def test_no_examples_is_undefined_not_zero():
    assert proportion(0, 0) == {"value": None, "n": 0, "ci_low": None, "ci_high": None, "k": 0}


def test_vectorized_proportions_match_one_at_a_time_and_keep_undefined_entries_apart():
    # Catches a mask that shifts entries when some n are 0.
    ks, ns = [0, 2, 0, 5], [4, 7, 0, 5]
    assert proportions(ks, ns) == [proportion(k, n) for k, n in zip(ks, ns)]


@pytest.mark.parametrize("k, n", [(3, 2), (-1, 4), (0.5, 2)])
def test_impossible_counts_are_rejected(k, n):
    with pytest.raises(ValueError, match="k"):
        proportion(k, n)


def test_accuracy_by_layer_counts_matches_per_layer():
    labels = np.array([True, True, False, False, True])
    predicted = np.array([[True, False], [True, False], [False, False], [True, True], [True, True]])
    result = accuracy_by_layer(predicted, labels)
    assert [r["k"] for r in result] == [4, 2]  # layer 0 misses example 3; layer 1 hits examples 2 and 4 only
    assert result[1] == proportion(2, 5)


def test_accuracy_by_layer_rejects_a_transposed_matrix():
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        accuracy_by_layer(np.zeros((2, 5), dtype=bool), np.zeros(5, dtype=bool))


def test_the_interval_holds_its_value_at_k_equal_n():
    """statsmodels' Wilson upper bound at 12 of 12 is 0.9999999999999999: a bar drawn from it had a negative error."""
    for n in (1, 7, 12, 250):
        full, none = proportion(n, n), proportion(0, n)
        assert full["ci_low"] <= full["value"] <= full["ci_high"] and none["ci_low"] <= none["value"] <= none["ci_high"]
