"""binary_scores against scikit-learn, per layer: undefined where scikit-learn has no value, never 0."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from retraction_kedro.probes import binary_scores
from retraction_kedro.probes.training import _balanced_accuracy


def sklearn_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """The same four numbers from scikit-learn, layer by layer (NaN where scikit-learn gives none)."""
    out = {"accuracy": [], "balanced_accuracy": [], "positive_accuracy": [], "negative_accuracy": []}
    for layer in range(predicted.shape[1]):
        p = predicted[:, layer]
        if len(labels) == 0:  # scikit-learn refuses empty input
            for values in out.values():
                values.append(math.nan)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one class: "y_pred contains classes not in y_true"
            out["balanced_accuracy"].append(balanced_accuracy_score(labels, p))
        out["accuracy"].append(accuracy_score(labels, p))
        for name, label in (("positive_accuracy", True), ("negative_accuracy", False)):
            out[name].append(recall_score(labels, p, pos_label=label, zero_division=np.nan))
    return out


def assert_matches_sklearn(predicted: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    ours = binary_scores(torch.from_numpy(predicted), torch.from_numpy(labels))
    expected = sklearn_scores(predicted, labels)
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name].numpy(), values, rtol=0, atol=1e-7, equal_nan=True, err_msg=name)
    return ours


def test_the_issues_one_class_example():
    # the negative class is absent: its accuracy is undefined, balanced accuracy is the positives' 2/3 (was 0.0 and 1/3)
    ours = assert_matches_sklearn(np.array([[True], [False], [True]]), np.array([True, True, True]))
    assert math.isnan(ours["negative_accuracy"][0]) and ours["balanced_accuracy"][0] == pytest.approx(2 / 3)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):  # scikit-learn's value, with its warning
        assert balanced_accuracy_score([1, 1, 1], [1, 0, 1]) == pytest.approx(2 / 3)


def test_only_negatives():
    ours = assert_matches_sklearn(np.array([[True, False], [False, False]]), np.array([False, False]))
    assert math.isnan(ours["positive_accuracy"][1]) and ours["balanced_accuracy"].tolist() == [0.5, 1.0]


def test_no_rows_is_undefined_everywhere():
    ours = assert_matches_sklearn(np.zeros((0, 3), dtype=bool), np.zeros(0, dtype=bool))
    assert all(torch.isnan(values).all() for values in ours.values())  # was 0.0 for balanced accuracy


@pytest.mark.parametrize("seed", range(5))
def test_random_inputs_per_layer(seed):
    rng = np.random.default_rng(seed)
    n, layers = int(rng.integers(1, 40)), 4
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    predicted = rng.random((n, layers)) < rng.uniform(0.2, 0.8, size=layers)
    assert_matches_sklearn(predicted, labels)


def test_the_trainers_epoch_score_is_the_same_rule():
    # the batched trainer chooses epochs on logits [L, N]: the same balanced accuracy, one class and none included
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.standard_normal((3, 20)))
    for labels in (rng.random(20) < 0.5, np.ones(20, dtype=bool), np.zeros(20, dtype=bool)):
        expected = sklearn_scores((logits > 0).T.numpy(), labels)["balanced_accuracy"]
        np.testing.assert_allclose(_balanced_accuracy(logits, torch.from_numpy(labels)).numpy(), expected, atol=1e-12)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"predicted must be \[N, L\] and labels \[N\], got \(3,\) and \(3,\)"):
        binary_scores(torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool))
