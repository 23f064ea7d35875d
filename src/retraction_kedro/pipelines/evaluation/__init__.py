"""evaluation: retraction judge and metrics per testbed."""

from .pipeline import create_paper_pipeline, create_pipeline

__all__ = ["create_paper_pipeline", "create_pipeline"]
