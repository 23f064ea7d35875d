"""evaluation: retraction judge and metrics per testbed."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
