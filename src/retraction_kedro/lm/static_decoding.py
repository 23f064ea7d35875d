"""Decoding on a static KV cache with a compiled step: the GPU path.

On a GPU the bare loop (``decoding.decode``) is host-bound: each step launches hundreds of small
kernels from Python (~25 ms for an 8B model against a ~4 ms weight-read floor). Here the batch keeps
fixed shapes for its whole run (transformers' ``StaticCache``, a full-length attention mask, rows
that finish stay in the batch), so one decode step can be compiled once and replayed as a CUDA graph
(``torch.compile(mode="reduce-overhead")``). The prompt pass runs eagerly, with the interventions'
hooks; decode steps never see hooks (interventions that act on every token run on the loop).

Greedy picks and sampled draws are those of the loop: the same ``choose`` sees the same logits (to
float noise), and a row's tokens after its stop token are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .contracts import check_cache_length, with_cache
from .decoding import Chooser, StopRule
from .prefix import PromptBatch

logger = logging.getLogger(__name__)

LENGTH_BUCKET = 64  # cache lengths are rounded up to a multiple of this: few shapes, few compilations
FAILED_MARK = "_retraction_compiled_step_failed"  # on a model whose compiled step could not run: why


class CompiledStepError(RuntimeError):
    """The compiled decode step could not be compiled or captured for this model (e.g. a CUDA graph that would copy
    from the host); the uncompiled paths still run it."""


def compiled_step_failure(model: Any) -> str | None:
    """Why this model's compiled step failed earlier in this process, or None."""
    return model.__dict__.get(FAILED_MARK)


def static_cache_supported(model: Any) -> str | None:
    """None when the static path can run ``model``; else why not (the loop runs it then)."""
    from transformers import DynamicCache, StaticCache

    if any(DynamicCache(config=model.config).is_sliding):
        return "sliding-window layers"
    if "cumulative_length" not in StaticCache(config=model.config, max_cache_len=8).layers[0].__dict__:
        import transformers

        return f"transformers {transformers.__version__}'s StaticCache has no running length (needs >= 5.5)"
    return None


@dataclass
class _Decoder:
    """A static cache of ``rows x length`` positions and the step that decodes on it (compiled once)."""

    cache: Any
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _decoder(model: Any, rows: int, length: int, compile_mode: str | None) -> _Decoder:
    """The decoder of this shape, made once per model (kept on the model, so it dies with it)."""
    decoders: dict[tuple, _Decoder] = model.__dict__.setdefault("_retraction_static_decoders", {})
    key = (rows, length, compile_mode)
    if key not in decoders:
        from transformers import StaticCache

        if len(decoders) >= 4:  # each holds a KV cache: keep a few shapes only
            decoders.pop(next(iter(decoders)))
        cache = StaticCache(config=model.config, max_cache_len=length)
        arguments = with_cache(model, cache)

        def step(input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, **arguments).logits
            return logits[:, -1].float()

        if compile_mode is not None:
            # Every decoder compiles the same code object (this closure): dynamo counts each one as a recompile of
            # it, and past its limit (8 by default) a fullgraph compile fails. A run makes a few per model and shape.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
            options = {"backend": compile_mode} if compile_mode in BACKENDS else {"mode": compile_mode}
            step = torch.compile(step, fullgraph=True, dynamic=False, **options)
            logger.info("Decode step for %d rows x %d positions: compiled (%s) at its first call", rows, length, compile_mode)
        decoders[key] = _Decoder(cache, step)
    return decoders[key]


BACKENDS = ("eager", "aot_eager", "cudagraphs", "inductor")  # torch.compile backends; other names are its modes


def decode_static(
    model: Any,
    batch: PromptBatch,
    rule: StopRule,
    choose: Chooser,
    compile_mode: str | None = None,
    after_prompt: Callable[[], None] | None = None,
    slots: int | None = None,
    inputs: Sequence[int] | None = None,
) -> list[list[int]]:
    """Generated token ids per row of ``batch`` (as ``decoding.decode``), on a static cache.

    The prompt pass is the loop's own (the batch's dynamic cache, real rows only); its keys and
    values then move into the static cache, padded to ``slots`` rows, so that every batch of a call
    shares one compiled step. ``after_prompt`` runs after the prompt pass (the caller takes its
    hook-based interventions off there: decode steps run without them). ``inputs``: each row's input
    index, which ``choose`` sees (a sampler draws that input's uniforms).
    """
    if batch.cache is None:
        raise ValueError("decode_static needs a batch with a KV cache (batch_inputs(..., use_cache=True))")
    size, width = batch.attention_mask.shape
    rows = max(slots or size, size)
    inputs = torch.tensor(list(inputs) if inputs is not None else range(size))
    length = -(-(width + rule.max_new_tokens) // LENGTH_BUCKET) * LENGTH_BUCKET
    decoder = _decoder(model, rows, length, compile_mode)
    device = batch.input_ids.device
    last = torch.tensor([batch.input_ids.shape[1] - 1])
    with torch.inference_mode():
        logits = model(**batch.forward_kwargs(model), logits_to_keep=last).logits[:, -1].float()
        check_cache_length(batch.cache, width, "static decoding: the prompt pass")
        if after_prompt is not None:
            after_prompt()
        cache = decoder.cache
        cache.reset()
        for index, layer in enumerate(batch.cache.layers):  # padded rows attend to zeros: finite, and dropped
            keys, values = (torch.cat([t, t.new_zeros(rows - size, *t.shape[1:])]) for t in (layer.keys, layer.values))
            cache.update(keys, values, index)
        check_cache_length(cache, width, "static decoding: the prompt's keys and values moved to the static cache")
        mask = batch.attention_mask.new_ones(rows, length)
        mask[:size, :width] = batch.attention_mask  # later positions: the causal mask hides those not yet written
        positions = torch.cat([batch.position_ids[:, -1:], batch.position_ids.new_zeros(rows - size, 1)])
        chosen_rows = torch.zeros(rows, dtype=torch.long, device=device)
        tokens = torch.zeros(size, rule.max_new_tokens, dtype=torch.long)
        counts = torch.full((size,), rule.max_new_tokens)
        alive = torch.ones(size, dtype=torch.bool)
        eos = rule.eos_ids.to(device)
        for step in range(rule.max_new_tokens):
            if step < rule.min_new_tokens:
                logits[:, eos] = float("-inf")
            chosen = choose(logits, inputs, torch.full((size,), step))
            host = chosen.cpu()
            tokens[alive, step] = host[alive]
            if step + 1 == rule.max_new_tokens:
                break
            if step + 1 >= rule.min_new_tokens:
                stopped = alive & torch.isin(host, rule.stop_ids)
                counts[stopped] = step + 1
                alive &= ~stopped
            if not bool(alive.any()):
                break
            chosen_rows[:size] = chosen.to(device)
            positions += 1
            try:
                logits = decoder.step(chosen_rows.unsqueeze(1), positions, mask)[:size].clone()
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as error:
                if compile_mode is None:
                    raise
                reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                model.__dict__[FAILED_MARK] = reason  # compiling (and capturing) happens in the first calls
                model.__dict__.get("_retraction_static_decoders", {}).clear()
                raise CompiledStepError(f"the compiled decode step ({compile_mode}) failed: {reason}") from error
        check_cache_length(cache, width + step, "static decoding: the generation steps")
    return [row[:count] for row, count in zip(tokens.tolist(), counts.tolist())]
