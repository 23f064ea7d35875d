"""A bare decode loop: one prefill, then one token per step on the KV cache.

``model.generate`` runs logits processors, stopping criteria and bookkeeping for every step
and keeps finished rows in the batch. Here the LM head runs for the last position only, a row
stops on its own stop tokens, and finished rows leave the batch and its cache. Greedy decoding
picks what ``generate`` picks. Sampling draws each row's uniforms from that row's own
generator, so a row's sample does not depend on the batch it runs in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .contracts import check_cache_length, with_cache
from .prefix import PromptBatch

CANDIDATES = 64  # top-p first looks for the nucleus among this many most likely tokens (exact: else a full sort)
DROP_SHARE = 0.125  # finished rows leave the batch once they are this share of it (each drop copies the KV cache)


@dataclass(frozen=True)
class StopRule:
    """``stop_ids`` end a row (the token is kept); ``eos_ids`` cannot be drawn before ``min_new_tokens``."""

    stop_ids: torch.Tensor
    eos_ids: torch.Tensor
    max_new_tokens: int
    min_new_tokens: int = 0


def greedy(logits: torch.Tensor, step: int) -> torch.Tensor:
    return logits.argmax(-1)


class NucleusSampler:
    """Temperature and top-p (nucleus) sampling by inverse transform: one uniform per row and step.

    ``seeds`` gives each row its generator; the uniforms of all steps are drawn when the batch
    starts. The nucleus is the smallest set of most likely tokens whose probability reaches
    ``top_p``; the draw is the token where the row's uniform falls in the nucleus' cumulative mass.
    """

    def __init__(self, seeds: Sequence[int], steps: int, temperature: float, top_p: float):
        draws = [
            torch.rand(steps, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) for seed in seeds
        ]
        self.uniforms = torch.stack(draws)  # [rows, steps] on the CPU
        self.temperature, self.top_p = temperature, top_p

    def keep(self, rows: torch.Tensor) -> None:
        self.uniforms = self.uniforms[rows.cpu()]

    def __call__(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p >= 1.0:  # the whole vocabulary: no sorting needed
            order, cum = None, probs.cumsum(-1)
            count = torch.full((len(probs), 1), probs.shape[-1], device=probs.device)
        else:
            values, order = probs.topk(min(CANDIDATES, probs.shape[-1]))
            cum = values.cumsum(-1)
            if bool((cum[:, -1] < self.top_p).any()):  # some nucleus is wider than the candidates
                values, order = probs.sort(dim=-1, descending=True)
                cum = values.cumsum(-1)
            count = ((cum - values) < self.top_p).sum(-1, keepdim=True)  # the mass before a nucleus token is < top_p
        total = cum.gather(1, count - 1)
        target = (self.uniforms[:, step : step + 1].to(cum.device, cum.dtype) * total).contiguous()
        index = torch.minimum(torch.searchsorted(cum, target, right=True), count - 1)
        return (order.gather(1, index) if order is not None else index).squeeze(1)


def decode(
    model: Any,
    batch: PromptBatch,
    rule: StopRule,
    choose: Callable[[torch.Tensor, int], torch.Tensor],
    on_keep: Callable[[torch.Tensor], None] | None = None,
) -> list[list[int]]:
    """Generated token ids per row of ``batch`` (left-padded, with a cache; see ``prefix.batch_inputs``).

    ``choose(logits, step)`` picks the next token of every row still running; ``on_keep(rows)``
    hears which rows stay when finished ones leave the batch. The cache must grow by every token
    fed (checked after the prompt pass and each step): a forward that ignored it raises.
    """
    mask, cache = batch.attention_mask, batch.cache
    if cache is None:
        raise ValueError("decode needs a batch with a KV cache (batch_inputs(..., use_cache=True))")
    size, width, device = mask.shape[0], mask.shape[1], mask.device
    mask = torch.cat([mask, mask.new_ones(size, rule.max_new_tokens)], dim=1)
    positions = batch.position_ids[:, -1:]
    cache_argument = with_cache(model, cache)
    rows = torch.arange(size)  # which input row each batch row is
    alive = torch.ones(size, dtype=torch.bool)  # batch rows still generating
    tokens = torch.zeros(size, rule.max_new_tokens, dtype=torch.long)
    counts = torch.full((size,), rule.max_new_tokens)
    # The last position as an index tensor (a CPU index serves any device), not ``logits_to_keep=1``: that
    # slice is strided, and the LM head on a strided [batch, 1, hidden] input falls to a batched matmul ~10x
    # slower on the CPU.
    last = torch.tensor([batch.input_ids.shape[1] - 1])
    with torch.inference_mode():
        logits = model(**batch.forward_kwargs(model), logits_to_keep=last).logits[:, -1].float()
        check_cache_length(cache, width, "decoding: the prompt pass")
        for step in range(rule.max_new_tokens):
            if step < rule.min_new_tokens:
                logits[:, rule.eos_ids.to(logits.device)] = float("-inf")
            chosen = choose(logits, step).cpu()
            tokens[rows[alive], step] = chosen[alive]
            if step + 1 == rule.max_new_tokens:
                break
            if step + 1 >= rule.min_new_tokens:
                stopped = alive & torch.isin(chosen, rule.stop_ids)
                counts[rows[stopped]] = step + 1
                alive &= ~stopped
            if not bool(alive.any()):
                break
            if int((~alive).sum()) >= max(1.0, DROP_SHARE * len(alive)):  # finished rows leave batch, cache, sampler
                keep = alive.nonzero().squeeze(1)
                rows, chosen, alive = rows[keep], chosen[keep], alive[keep]
                cache.batch_select_indices(keep)
                keep = keep.to(device)
                mask, positions = mask[keep], positions[keep]
                if on_keep is not None:
                    on_keep(keep)
            positions = positions + 1
            logits = (
                model(
                    input_ids=chosen.to(device).unsqueeze(1),
                    attention_mask=mask[:, : width + step + 1],
                    position_ids=positions,
                    **cache_argument,
                )
                .logits[:, -1]
                .float()
            )
            check_cache_length(cache, width + step + 1, "decoding: a generation step")
    return [row[:count] for row, count in zip(tokens.tolist(), counts.tolist())]
