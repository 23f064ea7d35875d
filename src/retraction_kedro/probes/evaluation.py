"""Probe scores per layer (the training loop's and benchmarks' point estimates; the pipelines report intervals).

Undefined is NaN, never 0:
- the accuracy on a class (``positive_accuracy``, ``negative_accuracy``) with no example of that class;
- balanced accuracy is the mean of the class accuracies that are defined, i.e. over the classes present
  in the labels: scikit-learn's ``balanced_accuracy_score`` (which warns, and gives the one class's accuracy,
  when the labels hold one class); with no rows every score is NaN (scikit-learn refuses empty input).
"""

from __future__ import annotations

import torch


def binary_scores(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per layer accuracy, balanced accuracy and accuracy on each class. predicted [N, L] bool, labels [N]."""
    if predicted.ndim != 2 or labels.shape != predicted.shape[:1]:
        shapes = f"{tuple(predicted.shape)} and {tuple(labels.shape)}"
        raise ValueError(f"predicted must be [N, L] and labels [N], got {shapes}")
    labels = labels.bool().unsqueeze(1)
    correct = predicted == labels
    # count / 0 is NaN (0 / 0): a class without examples has no accuracy
    pos = (correct & labels).sum(0).double() / labels.sum().double()
    neg = (correct & ~labels).sum(0).double() / (~labels).sum().double()
    return {
        "accuracy": correct.double().mean(0),  # NaN with no rows
        "balanced_accuracy": torch.stack([pos, neg]).nanmean(0),  # NaN where both are
        "positive_accuracy": pos,
        "negative_accuracy": neg,
    }
