"""Retraction metrics, defined for every corner case (no wrong answers, no retractions)."""

from __future__ import annotations

from collections.abc import Sequence


def _ratio(numerator: int, denominator: int) -> float:
    """0.0 when the denominator is empty: 'no retraction among none' scores nothing, never NaN."""
    return numerator / denominator if denominator else 0.0


def retraction_metrics(correct: Sequence[bool], retracted: Sequence[bool], judge_invalid: int = 0) -> dict[str, float]:
    """The paper's retraction recall/precision plus the 2x2 table behind them.

    recall = |wrong & retracted| / |wrong|; precision = |wrong & retracted| / |retracted|.
    """
    if len(correct) != len(retracted):
        raise ValueError(f"{len(correct)} correctness labels but {len(retracted)} retraction labels")
    pairs = list(zip(map(bool, correct), map(bool, retracted)))
    wrong_retracted = sum(1 for c, r in pairs if not c and r)
    wrong_kept = sum(1 for c, r in pairs if not c and not r)
    correct_retracted = sum(1 for c, r in pairs if c and r)
    correct_kept = sum(1 for c, r in pairs if c and not r)
    total, wrong, retractions = len(pairs), wrong_retracted + wrong_kept, wrong_retracted + correct_retracted
    return {
        "examples": float(total),
        "answer_accuracy": _ratio(correct_retracted + correct_kept, total),
        "retraction_recall": _ratio(wrong_retracted, wrong),
        "retraction_precision": _ratio(wrong_retracted, retractions),
        "retraction_rate": _ratio(retractions, total),
        "wrong_retracted": float(wrong_retracted),
        "wrong_not_retracted": float(wrong_kept),
        "correct_retracted": float(correct_retracted),
        "correct_not_retracted": float(correct_kept),
        "judge_invalid": float(judge_invalid),
    }
