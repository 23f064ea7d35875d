import numpy as np
import pytest

from retraction_kedro.evidence import clustered_proportion, proportion


def test_the_pooled_rate_is_the_share_of_all_draws():
    outcomes = [[True, False, False], [True, True, True], [False, False, False], [True, False, True]]
    result = clustered_proportion(outcomes, seed=0, resamples=500)
    assert result["value"] == pytest.approx(6 / 12) and result["n"] == 4 and result["draws"] == 12 and result["k"] == 6
    assert result["ci_low"] < 0.5 < result["ci_high"]


def test_draws_of_one_example_do_not_count_as_independent():
    """Perfectly repeated draws carry no more information than one draw per example: the interval is
    as wide as with one draw, not narrower as pooling all draws (Wilson on n x k) would make it."""
    rng = np.random.default_rng(1)
    once = rng.random(60) < 0.3
    repeated = np.repeat(once[:, None], 10, axis=1)
    clustered = clustered_proportion(repeated, seed=0, resamples=2000)
    single = clustered_proportion(once[:, None], seed=0, resamples=2000)
    assert clustered["ci_high"] - clustered["ci_low"] == pytest.approx(single["ci_high"] - single["ci_low"])
    naive = proportion(int(repeated.sum()), repeated.size)
    assert naive["ci_high"] - naive["ci_low"] < 0.5 * (clustered["ci_high"] - clustered["ci_low"])


def test_no_example_is_undefined_and_the_seed_fixes_the_interval():
    assert clustered_proportion(np.zeros((0, 3), dtype=bool), seed=0)["value"] is None
    outcomes = np.random.default_rng(2).random((30, 4)) < 0.4
    assert clustered_proportion(outcomes, seed=5) == clustered_proportion(outcomes, seed=5)
    means = np.random.default_rng(5).multinomial(30, np.full(30, 1 / 30), size=300) @ outcomes.mean(axis=1) / 30
    result = clustered_proportion(outcomes, seed=5, resamples=300)
    assert [result["ci_low"], result["ci_high"]] == pytest.approx(np.quantile(means, [0.025, 0.975]).tolist())
