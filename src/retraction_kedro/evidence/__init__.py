"""Uncertainty for every reported number: proportions with Wilson intervals, bootstrap intervals for AUROC,
balanced accuracy, kappa and paired differences, exact McNemar tests; one estimate schema, flattened for MLflow
and JSON."""

from .agreement import agreement
from .balanced import balanced_accuracy_by_layer
from .clustered import clustered_proportion
from .intervals import accuracy_by_layer, proportion, proportions
from .paired import paired_difference, paired_difference_by_layer, retraction_differences
from .ranking import auroc_by_layer
from .retraction import retraction_metrics
from .schema import estimate, flatten

__all__ = [
    "accuracy_by_layer", "agreement", "auroc_by_layer", "balanced_accuracy_by_layer", "clustered_proportion",
    "estimate", "flatten", "paired_difference", "paired_difference_by_layer", "proportion", "proportions",
    "retraction_differences", "retraction_metrics",
]  # fmt: skip
