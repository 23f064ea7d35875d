"""data_construction: model-specific continuation sets (the paper's recipe)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
