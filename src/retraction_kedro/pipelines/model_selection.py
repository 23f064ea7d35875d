"""Which weights a model-running template uses: the base model of the run, or a fine-tuned one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retraction_kedro.config.parameters import ModelParameters


def base_model_spec(model: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` parameters, checked, as the record of which weights the namespace ran."""
    return ModelParameters.parse(model, "model").model_dump()


def finetuned_model_spec(model: dict[str, Any], finetuned_dir: str) -> dict[str, Any]:
    """The base model with the LoRA adapter saved by the sft pipeline (merged in at load time)."""
    return ModelParameters.parse({**model, "adapter": str(Path(finetuned_dir) / "adapter")}, "model").model_dump()
