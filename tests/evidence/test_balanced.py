import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from retraction_kedro.evidence import balanced_accuracy_by_layer, flatten
from retraction_kedro.evidence.balanced import _balanced
from retraction_kedro.evidence.bootstrap import resample_counts


def sklearn_balanced(labels, predicted, weights=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one class present: scikit-learn warns and averages over that class
        return balanced_accuracy_score(labels, predicted, sample_weight=weights)


@pytest.mark.parametrize("seed", range(4))
def test_values_are_scikit_learns_per_layer(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    labels = rng.random(n) < 0.4
    predicted = rng.random((n, 5)) < 0.5
    result = balanced_accuracy_by_layer(predicted, labels, seed=0, resamples=100)
    expected = [sklearn_balanced(labels, predicted[:, layer]) for layer in range(5)]
    np.testing.assert_allclose([r["value"] for r in result], expected, rtol=0, atol=1e-12)
    assert {r["n"] for r in result} == {n} and {r["positives"] for r in result} == {int(labels.sum())}


def test_resampled_statistic_is_scikit_learn_with_the_counts_as_weights():
    # the bootstrap's matrix form is the same statistic as the value; a resample missing a class is NaN (skipped)
    rng = np.random.default_rng(2)
    labels, predicted = rng.random(15) < 0.2, rng.random((15, 3)) < 0.5
    counts = resample_counts(15, 60, seed=4)
    got = _balanced(counts.astype(float), predicted == labels[:, None], labels, [False, True])
    for r, row in enumerate(counts):
        both = row[labels].sum() > 0 and row[~labels].sum() > 0
        for layer in range(3):
            expected = sklearn_balanced(labels, predicted[:, layer], row) if both else np.nan
            np.testing.assert_allclose(got[r, layer], expected, atol=1e-12, equal_nan=True)
    assert np.isnan(got[:, 0]).any()  # with 3 positives in 15 some resamples miss them


def test_interval_contains_the_value_and_follows_the_seed():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.5
    predicted = np.stack([rng.random(300) < 0.5, np.where(rng.random(300) < 0.8, labels, ~labels)], axis=1)
    result = balanced_accuracy_by_layer(predicted, labels, seed=3)
    assert result[0]["ci_low"] < 0.5 < result[0]["ci_high"]  # chance
    assert result[1]["ci_low"] < result[1]["value"] < result[1]["ci_high"] and result[1]["ci_low"] > 0.7
    assert result == balanced_accuracy_by_layer(predicted, labels, seed=3)
    assert result != balanced_accuracy_by_layer(predicted, labels, seed=4)


def test_one_class_is_that_class_accuracy_and_no_rows_is_undefined():
    one_class = balanced_accuracy_by_layer(np.array([[True], [False], [True]]), [True, True, True], seed=0, resamples=200)[0]
    assert one_class["value"] == pytest.approx(sklearn_balanced([1, 1, 1], [1, 0, 1])) == pytest.approx(2 / 3)
    assert one_class["positives"] == 3 and one_class["skipped_resamples"] == 0  # every resample has the one class
    empty = balanced_accuracy_by_layer(np.zeros((0, 2), dtype=bool), np.zeros(0, dtype=bool), seed=0)
    assert empty == [{"value": None, "n": 0, "ci_low": None, "ci_high": None, "positives": 0, "skipped_resamples": None}] * 2
    assert flatten({"b": empty[0]}, drop_undefined=True) == {"b.n": 0, "b.positives": 0}  # absent from MLflow, n kept


def test_labels_and_shapes_are_checked():
    with pytest.raises(ValueError, match=r"labels\[1\] is 2, expected a boolean"):
        balanced_accuracy_by_layer(np.ones((2, 1), dtype=bool), [1, 2], seed=0)
    with pytest.raises(ValueError, match=r"predicted must be \[N, L\]"):
        balanced_accuracy_by_layer(np.ones(2, dtype=bool), [1, 0], seed=0)
