"""activations: continuations and hidden states for every testbed and truthfulness set."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
