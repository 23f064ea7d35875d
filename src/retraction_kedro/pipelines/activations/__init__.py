"""activations: continuations and hidden states for every testbed and truthfulness set."""

from .pipeline import create_paper_pipeline, create_pipeline

__all__ = ["create_paper_pipeline", "create_pipeline"]
