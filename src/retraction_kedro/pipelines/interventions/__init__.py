"""interventions: belief steering and attention patching, with retraction measured under each."""

from .pipeline import create_paper_pipeline, create_pipeline

__all__ = ["create_paper_pipeline", "create_pipeline"]
