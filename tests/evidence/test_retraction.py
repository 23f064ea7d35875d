import pytest

from retraction_kedro.evidence import proportion, retraction_metrics


def test_each_metric_has_the_right_denominator():
    # 2x2: wrong & retracted 3, wrong & kept 5, correct & retracted 1, correct & kept 11 (20 examples).
    correct = [False] * 8 + [True] * 12
    retracted = [True] * 3 + [False] * 5 + [True] * 1 + [False] * 11
    metrics = retraction_metrics(correct, retracted, judge_invalid=2)
    assert metrics["retraction_recall"] == proportion(3, 8)  # over wrong answers, not all examples
    assert metrics["retraction_precision"] == proportion(3, 4)  # over retractions
    assert metrics["retraction_rate"] == proportion(4, 20)
    assert metrics["answer_accuracy"] == proportion(12, 20)
    assert {k: metrics[k] for k in ("examples", "wrong_retracted", "wrong_not_retracted", "correct_retracted",
                                    "correct_not_retracted", "judge_invalid")} == {
        "examples": 20, "wrong_retracted": 3, "wrong_not_retracted": 5, "correct_retracted": 1,
        "correct_not_retracted": 11, "judge_invalid": 2,
    }  # fmt: skip


def test_precision_without_retractions_and_recall_without_wrong_answers_are_undefined():
    # The old metrics reported 0.0 for both; 0/0 is no evidence either way.
    nothing_retracted = retraction_metrics([False, False, True], [False, False, False])
    assert nothing_retracted["retraction_precision"]["value"] is None
    assert nothing_retracted["retraction_precision"]["n"] == 0
    assert nothing_retracted["retraction_recall"] == proportion(0, 2)  # 0 of 2 is defined, with an interval
    assert nothing_retracted["retraction_recall"]["ci_high"] > 0.5
    all_correct = retraction_metrics([True, True], [True, False])
    assert all_correct["retraction_recall"]["value"] is None
    assert all_correct["retraction_precision"] == proportion(0, 1)


def test_no_examples_leaves_every_rate_undefined():
    metrics = retraction_metrics([], [])
    assert all(metrics[k]["value"] is None for k in ("retraction_recall", "retraction_precision", "retraction_rate",
                                                     "answer_accuracy"))  # fmt: skip
    assert metrics["examples"] == 0


def test_mismatched_lengths_and_impossible_invalid_counts_are_errors():
    with pytest.raises(ValueError, match="correct and retracted"):
        retraction_metrics([True, False], [True])
    with pytest.raises(ValueError, match="judge_invalid=3"):
        retraction_metrics([True, False], [True, False], judge_invalid=3)
