"""Batched capture of the residual stream at one prompt position per example."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from .architecture import decoder_layers, decoder_stack, input_device, layer_hidden
from .batching import BatchJournal, fingerprint, plan_batches, progress
from .generation import encode_batch
from .interventions import Intervention, attached
from .loading import LanguageModel

logger = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 4  # a shorter common prefix is not worth its own pass


class _EnoughLayers(Exception):
    """Raised by the last hook needed: the layers above it are never computed."""


def _layer_indices(lm: LanguageModel, layers: Sequence[int] | None) -> list[int]:
    count = len(decoder_layers(lm.model))
    if layers is None:
        return list(range(count))
    chosen = sorted({int(layer) for layer in layers})
    bad = [layer for layer in chosen if not 0 <= layer < count]
    if bad:
        raise ValueError(f"Layer(s) {bad} out of range: the model has {count} decoder layers (0..{count - 1})")
    return chosen


def _run(stack: torch.nn.Module, **inputs: Any) -> None:
    try:
        stack(**inputs)
    except _EnoughLayers:
        pass


def _shared_prefix_length(ids: Sequence[Sequence[int]], keep: int) -> int:
    """Length of the token prefix common to all ``ids``, short enough to leave ``keep`` tokens of each row after it."""
    length = min(len(row) for row in ids) - keep
    first = ids[0]
    for row in ids[1:]:
        length = next((i for i in range(length) if row[i] != first[i]), length)
    return max(length, 0)


def _prefix_cache(lm: LanguageModel, stack: torch.nn.Module, last: torch.nn.Module, prefix: list[int]) -> DynamicCache:
    """Keys and values of ``prefix`` (one row) in the layers up to ``last``; the layers above never run."""

    def stop(module, args, output):
        raise _EnoughLayers

    cache = DynamicCache(config=lm.model.config)
    handle = last.register_forward_hook(stop)
    try:
        input_ids = torch.tensor([prefix], device=input_device(lm.model))
        _run(stack, input_ids=input_ids, past_key_values=cache, use_cache=True)
    finally:
        handle.remove()
    return cache


def _suffix_inputs(lm: LanguageModel, cache: DynamicCache, rows: list[list[int]]) -> dict[str, Any]:
    """Stack inputs for the rest of ``rows`` after the cached prefix.

    Left padding sits between prefix and suffix (masked), and the position ids count real tokens
    only, so every row sees exactly what its unpadded prompt would; the last token is at index -1.
    Each batch gets its own cache (the forward appends to it) holding the prefix expanded to the batch.
    """
    device, size, width = input_device(lm.model), len(rows), max(len(row) for row in rows)
    pad = lm.tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    prefix = cache.get_seq_length()
    batch_cache = DynamicCache(config=lm.model.config)
    for index, layer in enumerate(cache.layers):
        if layer.is_initialized:
            batch_cache.update(layer.keys.expand(size, -1, -1, -1), layer.values.expand(size, -1, -1, -1), index)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.cat([mask.new_ones(size, prefix), mask], dim=1),
        "position_ids": prefix + mask.cumsum(-1) - 1,  # pads get prefix - 1: a valid position, and masked anyway
        "past_key_values": batch_cache,
        "use_cache": True,
    }


def capture_hidden_states(
    lm: LanguageModel,
    prompts: Sequence[str],
    layers: Sequence[int] | None = None,
    position: int = -1,
    batch_size: int = 16,
    resume_dir: str | None = None,
    desc: str = "capture",
    show_progress: bool = True,
    out_dtype: torch.dtype = torch.float32,
    interventions: Sequence[Intervention] = (),
    share_prefix: bool = True,
) -> torch.Tensor:
    """Hidden state after each chosen decoder layer at ``position`` (counted from the end).

    Returns ``[examples, layers, hidden]`` on the CPU. Left padding puts position
    -1 on the last prompt token of every row, so one index serves the batch. Only
    the chosen position of each chosen layer is kept, and the LM head never runs.

    With ``share_prefix``, the token prefix common to all prompts (the chat template's
    system turn: about half of a short chat prompt) runs once, and every batch runs
    only the rest of its prompts on top of that prefix's KV cache. The result is the
    same to float noise. Interventions act on prompt positions, so with them (and
    with sliding-window layers, whose cache drops old keys) every prompt runs whole.
    """
    if position >= 0:
        raise ValueError(f"position counts from the end of the prompt and must be negative, got {position}")
    prompts = list(prompts)
    chosen = _layer_indices(lm, layers)
    if not prompts:
        return torch.empty(0, len(chosen), lm.hidden_size, dtype=out_dtype)
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    lengths = [len(row) for row in ids]
    too_short = [i for i, n in enumerate(lengths) if n < -position]
    if too_short:
        raise ValueError(f"Prompt(s) {too_short[:5]} have fewer than {-position} tokens")
    batches = plan_batches(lengths, batch_size)
    journal = BatchJournal(
        resume_dir, "capture", fingerprint(lm.spec, prompts, chosen, position, str(out_dtype), [i.key() for i in interventions])
    )
    done = {} if any(i.records for i in interventions) else journal.finished_tensors()
    stack, modules = decoder_stack(lm.model), decoder_layers(lm.model)
    shareable = share_prefix and not interventions and not any(DynamicCache(config=lm.model.config).is_sliding)
    prefix = _shared_prefix_length(ids, -position) if shareable else 0
    cache = None
    if prefix >= MIN_SHARED_PREFIX and len(done) < len(batches):
        logger.info("%s: the %d prompts share a prefix of %d tokens, run once", desc, len(prompts), prefix)
        with torch.inference_mode():
            cache = _prefix_cache(lm, stack, modules[chosen[-1]], ids[0][:prefix])
    result = torch.empty(len(prompts), len(chosen), lm.hidden_size, dtype=out_dtype)
    captured: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output):
            captured[layer] = layer_hidden(output)[:, position, :].detach().to("cpu", out_dtype)
            if layer == chosen[-1]:
                raise _EnoughLayers

        return hook

    with attached(lm, interventions):  # attached first: capture hooks then see the intervened stream
        handles = [modules[layer].register_forward_hook(make_hook(layer)) for layer in chosen]
        try:
            for number, indices in progress(enumerate(batches), len(batches), desc, show_progress):
                if number not in done:
                    for intervention in interventions:
                        intervention.start_batch(indices)
                    captured.clear()
                    with torch.inference_mode():
                        if cache is not None:
                            _run(stack, **_suffix_inputs(lm, cache, [ids[i][prefix:] for i in indices]))
                        else:
                            _run(stack, **encode_batch(lm, [prompts[i] for i in indices]), use_cache=False)
                    done[number] = torch.stack([captured[layer] for layer in chosen], dim=1)
                    journal.record_tensor(number, done[number])
                result[indices] = done.pop(number)
        finally:
            for handle in handles:
                handle.remove()
    journal.close()
    return result
