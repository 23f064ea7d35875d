"""sft: LoRA fine-tuning for retraction, evaluated before and after."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
