"""Model mechanics: the only package that touches transformers internals.

Pipelines load a model, render prompts, generate and capture hidden states
through these functions, never through transformers directly.
"""

from .contracts import LibraryContractError, UnsupportedVersionError, check_transformers_version

check_transformers_version()  # before anything relies on the installed transformers

from .capture import capture_hidden_states
from .finetuning import FineTuneResult, LoraSettings, completion_features, fine_tune_lora, sft_features
from .generation import GenerationSettings, generate_texts, generate_with_counts, sample_texts
from .interventions import AttentionPatch, Intervention, RowSteering, Steering, ValuePatch, top_changed_heads
from .loading import (
    EMBEDDED_MODEL_ID,
    LanguageModel,
    ModelNotFoundError,
    ModelShape,
    ModelSpec,
    load_language_model,
    model_shape,
    model_slug,
    release_models,
)
from .prompts import answer_messages, chat_prompt, continuation_prompt, question_messages

__all__ = [
    "LibraryContractError",
    "UnsupportedVersionError",
    "EMBEDDED_MODEL_ID",
    "FineTuneResult",
    "LoraSettings",
    "completion_features",
    "fine_tune_lora",
    "sft_features",
    "release_models",
    "GenerationSettings",
    "LanguageModel",
    "ModelNotFoundError",
    "ModelShape",
    "ModelSpec",
    "model_shape",
    "answer_messages",
    "capture_hidden_states",
    "chat_prompt",
    "continuation_prompt",
    "generate_texts",
    "generate_with_counts",
    "sample_texts",
    "AttentionPatch",
    "Intervention",
    "RowSteering",
    "Steering",
    "ValuePatch",
    "load_language_model",
    "model_slug",
    "question_messages",
    "top_changed_heads",
]
