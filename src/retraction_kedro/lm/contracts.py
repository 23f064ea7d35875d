"""Library contracts that break silently when transformers changes, checked where they are used.

transformers 5.24 renamed the models' KV-cache argument from ``past_key_values`` to ``cache``. A
model of either version takes the other name into ``**kwargs`` and runs without its history: no
error, wrong output. So the name is read off the installed model's ``forward`` signature, and every
call that feeds a cache checks that it grew by the tokens fed.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

CACHE_KEYWORDS = ("cache", "past_key_values")  # transformers >= 5.24, then the earlier name
# The transformers versions the oracle tests pass on (CI runs them at the floor and at the newest release);
# pyproject.toml declares the same range (a test keeps the two equal).
SUPPORTED_TRANSFORMERS = ">=5.2,<6"


class LibraryContractError(RuntimeError):
    """The installed library no longer does what this code relies on: results would be wrong, so nothing runs."""


class UnsupportedVersionError(ImportError):
    """An installed library outside the range this project is tested on."""


def check_transformers_version(installed: str | None = None) -> None:
    """Refuse a transformers outside :data:`SUPPORTED_TRANSFORMERS` (e.g. an older one on a GPU image)."""
    from packaging.specifiers import SpecifierSet

    if installed is None:
        import transformers

        installed = transformers.__version__
    if installed not in SpecifierSet(SUPPORTED_TRANSFORMERS, prereleases=True):
        raise UnsupportedVersionError(
            f"retraction_kedro needs transformers{SUPPORTED_TRANSFORMERS} (the versions its model mechanics are tested "
            f"on); this environment has {installed}: pip install 'transformers{SUPPORTED_TRANSFORMERS}'"
        )


@lru_cache(maxsize=64)
def _named_cache_keyword(module_type: type) -> str | None:
    parameters = inspect.signature(module_type.forward).parameters
    return next((name for name in CACHE_KEYWORDS if name in parameters), None)


def cache_keyword(module: Any) -> str:
    """The name under which ``module``'s ``forward`` takes the KV cache in the installed transformers.

    A wrapper whose forward passes ``**kwargs`` on (a peft model) takes its decoder stack's name.
    """
    name = _named_cache_keyword(type(module))
    if name is None:
        from .architecture import decoder_stack

        try:
            stack = decoder_stack(module)
        except TypeError:  # no decoder stack either
            stack = module
        name = _named_cache_keyword(type(stack)) if stack is not module else None
    if name is None:
        import transformers

        raise LibraryContractError(
            f"{type(module).__name__}.forward takes none of {list(CACHE_KEYWORDS)} (transformers "
            f"{transformers.__version__}): its KV cache cannot be passed, so prefix sharing and decoding would run "
            "without history"
        )
    return name


def with_cache(module: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments that hand ``cache`` to ``module``'s forward under the installed version's name."""
    return {cache_keyword(module): cache, "use_cache": True}


def check_cache_length(cache: Any, expected: int, where: str) -> None:
    """Raise unless ``cache`` holds ``expected`` positions: a forward that ignored it leaves it short."""
    found = int(cache.get_seq_length())  # a tensor on a static cache
    if found != expected:
        import transformers

        raise LibraryContractError(
            f"{where}: the KV cache holds {found} positions after the forward pass, expected {expected} "
            f"(transformers {transformers.__version__} did not use the cache it was given; results would be wrong)"
        )


def ensure_exact_attention(model: Any, requested: str | None = None) -> None:
    """Keep a model off an attention implementation that would drop part of its attention.

    transformers before 5.21 chose SDPA for Gemma2, which has no attention-logit soft-capping: the
    model ran without it, silently. A soft-capped model runs eager attention unless another
    implementation was asked for; SDPA asked for explicitly is refused.
    """
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if not getattr(config, "attn_logit_softcapping", None) or model.config._attn_implementation != "sdpa":
        return
    if requested == "sdpa":
        raise LibraryContractError(
            f"model.attn_implementation='sdpa': {type(model).__name__} soft-caps its attention logits, which SDPA "
            "cannot do; use 'eager' (or leave it unset)"
        )
    model.set_attn_implementation("eager")
