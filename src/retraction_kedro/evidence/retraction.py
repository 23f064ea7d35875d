"""The paper's retraction metrics, each a proportion with its n and interval, and the 2x2 table behind them."""

from __future__ import annotations

from collections.abc import Sequence

from .intervals import proportion
from .schema import as_bools


def retraction_metrics(correct: Sequence[bool], retracted: Sequence[bool], judge_invalid: int = 0) -> dict:
    """recall = wrong & retracted / wrong; precision = wrong & retracted / retracted (undefined with no retraction).

    Returns estimates under ``retraction_recall``, ``retraction_precision``, ``retraction_rate``,
    ``answer_accuracy`` and int counts ``examples``, ``wrong_retracted``, ``wrong_not_retracted``,
    ``correct_retracted``, ``correct_not_retracted``, ``judge_invalid``.
    """
    correct, retracted = as_bools(correct, "correct"), as_bools(retracted, "retracted")
    if correct.shape != retracted.shape or correct.ndim != 1:
        raise ValueError(f"correct and retracted must be 1-D of one length, got {correct.shape} and {retracted.shape}")
    if not 0 <= judge_invalid <= len(correct):
        raise ValueError(f"judge_invalid={judge_invalid} is not between 0 and the {len(correct)} examples")
    counts = {
        "wrong_retracted": int((~correct & retracted).sum()),
        "wrong_not_retracted": int((~correct & ~retracted).sum()),
        "correct_retracted": int((correct & retracted).sum()),
        "correct_not_retracted": int((correct & ~retracted).sum()),
    }
    wrong = counts["wrong_retracted"] + counts["wrong_not_retracted"]
    retractions = counts["wrong_retracted"] + counts["correct_retracted"]
    total = len(correct)
    return {
        "answer_accuracy": proportion(total - wrong, total),
        "retraction_recall": proportion(counts["wrong_retracted"], wrong),
        "retraction_precision": proportion(counts["wrong_retracted"], retractions),
        "retraction_rate": proportion(retractions, total),
        "examples": total,
        **counts,
        "judge_invalid": int(judge_invalid),
    }
