"""probing: per-layer belief probes and their prediction of retraction."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
