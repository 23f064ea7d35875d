"""The bare decode loop with continuous batching: a finished row's slot takes the next prompt.

``model.generate`` runs logits processors, stopping criteria and bookkeeping for every step and keeps
finished rows in the batch until the longest one ends. Here the LM head runs for the last position
only, each row stops on its own stop tokens, and prompts waiting in the queue take the places of
finished rows: their prompt pass runs as a group on top of the shared prefix, and its keys and values
join the running batch's KV cache, right-aligned with the other rows (left padding in between is
masked; position ids are each row's own). So batches stay full while rows end at very different
lengths, and each row's tokens are those it gets alone: greedy picks what ``generate`` picks, and
sampling draws each row's uniforms from that row's own generator at that row's own step.

Sliding-window layers keep only their window in the cache, which cannot be re-aligned: such models
admit a new group only when the batch is empty (plain batches, finished rows leaving them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from .contracts import check_cache_length, with_cache
from .prefix import PromptBatch

CANDIDATES = 64  # top-p first looks for the nucleus among this many most likely tokens (exact: else a full sort)
REFILL_SHARE = 0.125  # waiting prompts are let in once this share of the batch is free (each entry copies the KV cache)

# choose(logits [rows, vocab], rows: input index of each row, steps: tokens each row has generated) -> tokens [rows]
Chooser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StopRule:
    """``stop_ids`` end a row (the token is kept); ``eos_ids`` cannot be drawn before ``min_new_tokens``."""

    stop_ids: torch.Tensor
    eos_ids: torch.Tensor
    max_new_tokens: int
    min_new_tokens: int = 0


def greedy(logits: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


class NucleusSampler:
    """Temperature and top-p (nucleus) sampling by inverse transform: one uniform per row and step.

    ``seeds[i]`` gives input row ``i`` its generator; the uniforms of all its steps are drawn up front,
    and a row's ``k``-th token uses its ``k``-th uniform, whichever batch or slot it runs in. The
    nucleus is the smallest set of most likely tokens whose probability reaches ``top_p``; the draw is
    the token where the row's uniform falls in the nucleus' cumulative mass.
    """

    def __init__(self, seeds: Sequence[int], steps: int, temperature: float, top_p: float):
        draws = [torch.rand(steps, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) for seed in seeds]
        self.uniforms = torch.stack(draws) if draws else torch.empty(0, steps, dtype=torch.float64)  # [inputs, steps]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, logits: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
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
        uniforms = self.uniforms[rows.cpu(), steps.cpu()].unsqueeze(1)
        target = (uniforms.to(cum.device, cum.dtype) * total).contiguous()
        index = torch.minimum(torch.searchsorted(cum, target, right=True), count - 1)
        return (order.gather(1, index) if order is not None else index).squeeze(1)


def supports_refill(model: Any) -> bool:
    """Whether rows can join a running batch: not where sliding-window layers keep only their window of keys."""
    return not any(DynamicCache(config=model.config).is_sliding)


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``tensor`` with zeros added before its entries along ``dim`` up to ``width``."""
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


@dataclass
class _Running:
    """The rows being generated: one row of cache, mask and position per slot."""

    cache: DynamicCache
    mask: torch.Tensor  # [slots, cache length]: 1 where a row has a real key
    positions: torch.Tensor  # [slots, 1]: the position of each row's last token
    rows: torch.Tensor  # [slots]: the input index of each slot (CPU)
    steps: torch.Tensor  # [slots]: tokens generated so far (CPU)
    last: torch.Tensor  # [slots]: each slot's latest token, the next step's input (CPU)
    alive: torch.Tensor  # [slots] bool (CPU): still generating

    def keep(self, slots: torch.Tensor, config: Any) -> "_Running":
        """The running rows of ``slots`` only, with the key columns no kept row uses cut off on the left (where the
        cache holds every key: a sliding-window layer's cannot be cut)."""
        device = self.mask.device
        mask = self.mask[slots.to(device)]
        used = mask.any(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first == 0 or any(getattr(self.cache, "is_sliding", [])):
            self.cache.batch_select_indices(slots.to(device))
            cache, first = self.cache, 0
        else:
            cache = DynamicCache(config=config)
            for index, layer in enumerate(self.cache.layers):
                if layer.is_initialized:
                    cache.update(layer.keys[slots.to(device), :, first:], layer.values[slots.to(device), :, first:], index)
        return _Running(cache, mask[:, first:], self.positions[slots.to(device)],
                        self.rows[slots], self.steps[slots], self.last[slots], self.alive[slots])  # fmt: skip


def _joined(running: _Running | None, entering: _Running, config: Any) -> _Running:
    """The running rows and the entering ones in one batch, their keys right-aligned (padding on the left)."""
    if running is None:
        return entering
    width = max(running.mask.shape[1], entering.mask.shape[1])
    joined = DynamicCache(config=config)
    for index, (old, new) in enumerate(zip(running.cache.layers, entering.cache.layers)):
        if old.is_initialized and new.is_initialized:
            keys = torch.cat([_left_pad(old.keys, width, 2), _left_pad(new.keys, width, 2)])
            values = torch.cat([_left_pad(old.values, width, 2), _left_pad(new.values, width, 2)])
            joined.update(keys, values, index)
    return _Running(
        joined,
        torch.cat([_left_pad(running.mask, width, 1), _left_pad(entering.mask, width, 1)]),
        torch.cat([running.positions, entering.positions]),
        torch.cat([running.rows, entering.rows]),
        torch.cat([running.steps, entering.steps]),
        torch.cat([running.last, entering.last]),
        torch.cat([running.alive, entering.alive]),
    )


def decode_stream(
    model: Any,
    order: Sequence[int],
    make_batch: Callable[[list[int]], PromptBatch],
    rule: StopRule,
    choose: Chooser,
    batch_size: int,
    on_finish: Callable[[list[tuple[int, list[int]]]], None],
    prompt_pass: Callable[[list[int], PromptBatch], AbstractContextManager] = lambda rows, batch: nullcontext(),
    on_steps: Callable[[torch.Tensor], None] | None = None,
    refill: bool = True,
) -> None:
    """Generate for every input index in ``order`` (admitted in that order), at most ``batch_size`` rows at once.

    ``make_batch(rows)`` gives the prompt batch of those input rows (left-padded, with its cache);
    ``prompt_pass(rows, batch)`` is entered around their prompt pass (interventions learn their rows there);
    ``on_steps(rows)`` hears which input rows the decode steps run whenever that changes; ``on_finish``
    receives (input row, generated token ids) as rows end. ``refill=False``: a group enters only when
    the batch is empty (sliding-window caches cannot be re-aligned).
    """
    config = model.config
    queue: deque[int] = deque(order)
    running: _Running | None = None
    tokens: dict[int, list[int]] = {}
    stepping: torch.Tensor | None = None  # the input rows the last decode step ran
    with torch.inference_mode():
        while queue or (running is not None and bool(running.alive.any())):
            alive = int(running.alive.sum()) if running is not None else 0
            free = batch_size - alive
            if queue and (alive == 0 or (refill and free >= max(1.0, REFILL_SHARE * batch_size))):
                group = [queue.popleft() for _ in range(min(free, len(queue)))]
                running, finished = _admit(model, running, group, make_batch, rule, choose, prompt_pass, config, tokens)
            else:
                running, finished = _step(model, running, rule, choose, tokens)
            if finished:
                on_finish([(row, tokens.pop(row)) for row in finished])
            if running is not None and int((~running.alive).sum()) >= max(1.0, REFILL_SHARE * len(running.alive)):
                if not queue or not refill:  # rows still waiting take the places at the next entry instead
                    running = running.keep(running.alive.nonzero().squeeze(1), config)
            if on_steps is not None and running is not None and (stepping is None or not torch.equal(stepping, running.rows)):
                stepping = running.rows
                on_steps(stepping)


def _choose(logits: torch.Tensor, running: _Running, rule: StopRule, choose: Chooser) -> torch.Tensor:
    early = (running.steps < rule.min_new_tokens).nonzero()  # [rows, 1]: end of turn cannot be drawn yet
    if len(early) and len(rule.eos_ids):
        logits[early.to(logits.device), rule.eos_ids.to(logits.device)] = float("-inf")
    # rows that finished but still sit in the batch get a pick too (ignored): their step is kept in range
    return choose(logits, running.rows, running.steps.clamp(max=rule.max_new_tokens - 1)).cpu()


def _record(running: _Running, chosen: torch.Tensor, rule: StopRule, tokens: dict[int, list[int]]) -> list[int]:
    """Append each live row's token; end the rows that stopped or reached the limit; the rows that ended."""
    for slot in running.alive.nonzero().squeeze(1).tolist():
        row, token = int(running.rows[slot]), int(chosen[slot])
        tokens.setdefault(row, []).append(token)
    running.steps = running.steps + running.alive.long()
    running.last = torch.where(running.alive, chosen, running.last)
    stopped = torch.isin(chosen, rule.stop_ids) & (running.steps >= rule.min_new_tokens)
    ended = running.alive & (stopped | (running.steps >= rule.max_new_tokens))
    running.alive = running.alive & ~ended
    return running.rows[ended].tolist()


def _admit(model, running, group, make_batch, rule, choose, prompt_pass, config, tokens):
    """The prompt pass of ``group``; its rows join the running batch with their first token chosen."""
    batch = make_batch(group)
    last = torch.tensor([batch.input_ids.shape[1] - 1])  # an index tensor: a strided slice makes the head ~10x slower
    with prompt_pass(group, batch):
        logits = model(**batch.forward_kwargs(model), logits_to_keep=last).logits[:, -1].float()
    check_cache_length(batch.cache, batch.width, "decoding: the prompt pass")
    size = len(group)
    entering = _Running(
        batch.cache, batch.attention_mask, batch.position_ids[:, -1:], torch.tensor(group),
        torch.zeros(size, dtype=torch.long), torch.zeros(size, dtype=torch.long), torch.ones(size, dtype=torch.bool),
    )  # fmt: skip
    chosen = _choose(logits, entering, rule, choose)
    finished = _record(entering, chosen, rule, tokens)
    if running is not None:  # finished rows leave as the group enters: one copy of the cache for both
        running = running.keep(running.alive.nonzero().squeeze(1), config) if bool(running.alive.any()) else None
    return _joined(running, entering, config), finished


def _step(model, running: _Running, rule: StopRule, choose: Chooser, tokens):
    """One token for every running row."""
    device = running.mask.device
    width = running.mask.shape[1]
    running.mask = torch.cat([running.mask, running.mask.new_ones(len(running.rows), 1)], dim=1)
    running.positions = running.positions + 1
    logits = model(
        input_ids=running.last.to(device).unsqueeze(1),
        attention_mask=running.mask,
        position_ids=running.positions,
        **with_cache(model, running.cache),
    ).logits[:, -1].float()
    check_cache_length(running.cache, width + 1, "decoding: a generation step")
    chosen = _choose(logits, running, rule, choose)
    return running, _record(running, chosen, rule, tokens)


def decode(model: Any, batch: PromptBatch, rule: StopRule, choose: Chooser) -> list[list[int]]:
    """Generated token ids per row of one prompt batch (left-padded, with a cache; see ``prefix.batch_inputs``)."""
    results: dict[int, list[int]] = {}
    size = batch.input_ids.shape[0]
    decode_stream(
        model, range(size), lambda rows: batch, rule, choose, size, lambda done: results.update(done), refill=False
    )
    return [results[row] for row in range(size)]
