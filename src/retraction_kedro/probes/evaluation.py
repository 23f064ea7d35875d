"""Probe scores against correctness and retraction, as in the paper's tables."""

from __future__ import annotations

import torch


def binary_scores(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per layer accuracy, balanced accuracy and accuracy on each class. predicted [N, L] bool, labels [N]."""
    labels = labels.bool().unsqueeze(1)
    correct = predicted == labels
    positives, negatives = labels.sum(), (~labels).sum()
    pos = (correct & labels).sum(0) / positives.clamp(min=1)
    neg = (correct & ~labels).sum(0) / negatives.clamp(min=1)
    return {"accuracy": correct.float().mean(0), "balanced_accuracy": (pos + neg) / 2, "positive_accuracy": pos, "negative_accuracy": neg}


def _precision(hits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    count = chosen.sum(0)
    return torch.where(count > 0, (hits & chosen).sum(0) / count.clamp(min=1), torch.zeros_like(count, dtype=torch.float))


def group_accuracy(believed_correct: torch.Tensor, result: torch.Tensor, retracted: torch.Tensor) -> dict[str, torch.Tensor]:
    """The paper's retraction prediction: the probe 'believes wrong' <=> the model retracts.

    Returns per layer: retraction_prediction_accuracy, precision of 'believed wrong' (share of those
    that were retracted), precision of 'believed right' (share not retracted), and the probe's
    accuracy against correctness within each group correct/wrong x retracted/not.
    """
    result = result.bool().unsqueeze(1)
    retracted = retracted.bool().unsqueeze(1)
    believed_wrong = ~believed_correct
    scores = {
        "retraction_prediction_accuracy": (believed_wrong == retracted).float().mean(0),
        "believed_wrong_precision": _precision(retracted.expand_as(believed_wrong), believed_wrong),
        "believed_right_precision": _precision((~retracted).expand_as(believed_correct), believed_correct),
    }
    for name, mask in {
        "correct_retracted": result & retracted, "correct_not_retracted": result & ~retracted,
        "wrong_retracted": ~result & retracted, "wrong_not_retracted": ~result & ~retracted,
    }.items():  # fmt: skip
        mask = mask.squeeze(1)
        agree = believed_correct[mask] == result[mask]
        scores[f"accuracy_{name}"] = agree.float().mean(0) if mask.any() else torch.zeros(believed_correct.shape[1])
    return scores
