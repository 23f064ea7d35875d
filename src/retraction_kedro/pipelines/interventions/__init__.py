"""interventions: belief steering and attention patching, with retraction measured under each."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
