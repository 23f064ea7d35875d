"""report: the study's tables and figures for one run."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
