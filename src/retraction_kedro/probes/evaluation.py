"""Probe scores per layer (the training loop's and benchmarks' point estimates; the pipelines report intervals)."""

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
