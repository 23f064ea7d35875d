"""Which kept answers enter a set: balanced between right and wrong, or each class up to a cap."""

from __future__ import annotations

import random
from typing import Any

from retraction_kedro.config.parameters import SplitSelection


def select_by_class(rows: list[dict[str, Any]], selection: SplitSelection, rng: random.Random) -> list[dict[str, Any]]:
    """Balanced: min(count) of each class (``result``), as the paper does globally; otherwise each class up to
    its cap. Shuffled with the seeded ``rng`` before cutting, and back in (question, name) order after."""
    positives = [r for r in rows if r["result"]]
    negatives = [r for r in rows if not r["result"]]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    if selection.balance:
        keep_correct = keep_wrong = min(len(positives), len(negatives))
    else:
        keep_correct, keep_wrong = selection.max_correct or len(positives), selection.max_wrong or len(negatives)
    return sorted(positives[:keep_correct] + negatives[:keep_wrong], key=lambda r: (r["index"], r["name"]))
