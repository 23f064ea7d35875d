import math

import pytest

from retraction_kedro.pipelines.evaluation.metrics import retraction_metrics


def test_hand_computed_case():
    # correct: T T F F F F ; retracted: T F T T F F
    m = retraction_metrics([True, True, False, False, False, False], [True, False, True, True, False, False], judge_invalid=1)
    assert m["wrong_retracted"] == 2 and m["wrong_not_retracted"] == 2
    assert m["correct_retracted"] == 1 and m["correct_not_retracted"] == 1
    assert m["retraction_recall"] == pytest.approx(2 / 4)
    assert m["retraction_precision"] == pytest.approx(2 / 3)
    assert m["retraction_rate"] == pytest.approx(3 / 6)
    assert m["answer_accuracy"] == pytest.approx(2 / 6)
    assert m["judge_invalid"] == 1 and m["examples"] == 6


def test_no_wrong_answers_and_no_retractions_are_defined():
    m = retraction_metrics([True, True], [False, False])
    assert m["retraction_recall"] == 0.0 and m["retraction_precision"] == 0.0 and m["retraction_rate"] == 0.0
    assert all(not math.isnan(v) for v in m.values())
    empty = retraction_metrics([], [])
    assert empty["examples"] == 0 and empty["answer_accuracy"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 correctness labels but 1"):
        retraction_metrics([True, False], [True])
