"""Linear belief probes: one no-bias logistic probe per layer, all layers trained as one computation."""

from .evaluation import binary_scores
from .training import ProbeSchedule, fit_sklearn_probes, predict, train_probes

__all__ = ["ProbeSchedule", "binary_scores", "fit_sklearn_probes", "predict", "train_probes"]
