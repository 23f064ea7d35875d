"""Prompt batches on top of a token prefix that every prompt of a call shares.

Chat prompts start with the same template tokens (the system turn: about half of a short
chat prompt). Capture and generation run that prefix once per call and every batch only the
rest of its prompts on top of the prefix's KV cache. Left padding sits between prefix and
suffix (masked), and explicit position ids count real tokens only, so each row sees what its
unpadded prompt would; the last prompt token is at index -1 of every row.

Interventions act on prompt positions counted from the end and tell the prompt pass from a
decode step by its length (> 1), so the suffix keeps at least two tokens and every position an
intervention uses; the prefix runs before their hooks are attached. Sliding-window layers drop
old keys from their cache, so such models always run whole prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from .architecture import decoder_stack, input_device
from .contracts import check_cache_length, with_cache
from .loading import LanguageModel

MIN_SHARED_PREFIX = 4  # a shorter common prefix is not worth its own pass
MIN_SUFFIX = 2  # a one-token suffix would look like a decode step to the interventions' hooks


class EnoughLayers(Exception):
    """Raised by a hook on the last layer needed: the layers above it are never computed."""


def run_stack(stack: torch.nn.Module, **inputs: Any) -> None:
    """Call the decoder stack (no LM head), stopping quietly where a hook raised :class:`EnoughLayers`."""
    try:
        stack(**inputs)
    except EnoughLayers:
        pass


def shared_prefix_length(ids: Sequence[Sequence[int]], keep: int) -> int:
    """Length of the token prefix common to all ``ids``, short enough to leave ``keep`` tokens of each row after it."""
    length = min(len(row) for row in ids) - keep
    first = ids[0]
    for row in ids[1:]:
        length = next((i for i in range(length) if row[i] != first[i]), length)
    return max(length, 0)


def suffix_tokens_needed(positions: Sequence[int] = ()) -> int:
    """Prompt tokens each row must keep after the shared prefix, given the prompt positions (negative) in use."""
    return max([MIN_SUFFIX, *(-position for position in positions)])


def supports_prefix_sharing(lm: LanguageModel) -> bool:
    return not any(DynamicCache(config=lm.model.config).is_sliding)


@dataclass
class SharedPrefix:
    """KV cache of the prefix (one row), in the layers up to the last one a call needs."""

    length: int
    cache: DynamicCache


def compute_prefix(lm: LanguageModel, prefix: list[int], last: torch.nn.Module | None = None) -> SharedPrefix:
    """Run ``prefix`` once through the decoder stack (never the LM head), stopping after ``last`` if given."""

    def stop(module, args, output):
        raise EnoughLayers

    cache = DynamicCache(config=lm.model.config)
    handle = last.register_forward_hook(stop) if last is not None else None
    try:
        input_ids = torch.tensor([prefix], device=input_device(lm.model))
        with torch.inference_mode():
            stack = decoder_stack(lm.model)
            run_stack(stack, input_ids=input_ids, **with_cache(stack, cache))
    finally:
        if handle is not None:
            handle.remove()
    check_cache_length(cache, len(prefix), "the shared prefix pass")
    return SharedPrefix(len(prefix), cache)


def prefix_length(lm: LanguageModel, ids: Sequence[Sequence[int]], keep: int, enabled: bool = True) -> int:
    """Tokens of ``ids`` a call runs once as their shared prefix (0: whole prompts; a lone prompt shares nothing)."""
    if not enabled or len(ids) < 2 or not supports_prefix_sharing(lm):
        return 0
    length = shared_prefix_length(ids, keep)
    return length if length >= MIN_SHARED_PREFIX else 0


def plan_prefix(
    lm: LanguageModel, ids: Sequence[Sequence[int]], keep: int, enabled: bool, last: torch.nn.Module | None = None
) -> SharedPrefix | None:
    """The shared prefix of ``ids`` computed once, or None when sharing is off, unsupported or not worth it."""
    length = prefix_length(lm, ids, keep, enabled)
    return compute_prefix(lm, list(ids[0][:length]), last) if length else None


@dataclass
class PromptBatch:
    """One left-padded batch of prompt suffixes on top of the shared prefix (or whole prompts), as forward inputs.

    ``cache`` (when the batch keeps one) starts as the prefix expanded to the batch; the forward appends to it.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # prefix and suffix
    position_ids: torch.Tensor
    cache: DynamicCache | None

    @property
    def width(self) -> int:
        """Positions a forward of this batch leaves in its cache: the prefix and the padded suffix."""
        return self.attention_mask.shape[1]

    def forward_kwargs(self, module: torch.nn.Module) -> dict[str, Any]:
        """The keyword arguments of ``module``'s forward (the cache under the installed version's name)."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}
        return {**inputs, **(with_cache(module, self.cache) if self.cache is not None else {"use_cache": False})}


def batch_inputs(
    lm: LanguageModel, rows: Sequence[Sequence[int]], prefix: SharedPrefix | None, use_cache: bool
) -> PromptBatch:
    """Forward inputs for ``rows`` (token ids after the prefix, or whole prompts when ``prefix`` is None).

    Each batch gets its own cache (the forward appends to it) holding the prefix expanded to the batch.
    """
    device, size, width = input_device(lm.model), len(rows), max(len(row) for row in rows)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(row)) + list(row) for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    start = prefix.length if prefix else 0
    cache = None
    if use_cache or prefix is not None:
        cache = DynamicCache(config=lm.model.config)
        for index, layer in enumerate(prefix.cache.layers if prefix else []):
            if layer.is_initialized:
                cache.update(layer.keys.expand(size, -1, -1, -1), layer.values.expand(size, -1, -1, -1), index)
    return PromptBatch(
        input_ids=input_ids,
        attention_mask=torch.cat([mask.new_ones(size, start), mask], dim=1),
        position_ids=(start + mask.cumsum(-1) - 1).clamp(min=0),  # pads get a valid position; they are masked
        cache=cache,
    )
