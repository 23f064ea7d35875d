"""Which weights a model-running template uses: the base model of the run, or a fine-tuned one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retraction_kedro.lm import ModelSpec


def base_model_spec(model: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` parameters, checked before any model work starts."""
    ModelSpec.from_params(model)
    return dict(model)


def finetuned_model_spec(model: dict[str, Any], finetuned_dir: str) -> dict[str, Any]:
    """The base model with the LoRA adapter saved by the sft pipeline (merged in at load time)."""
    adapter = Path(finetuned_dir) / "adapter"
    spec = {**model, "adapter": str(adapter)}
    ModelSpec.from_params(spec)
    return spec
