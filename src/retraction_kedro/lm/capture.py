"""Batched capture of the residual stream at one prompt position per example."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from .architecture import decoder_layers, decoder_stack, layer_hidden
from .batching import BatchJournal, fingerprint, plan_batches, progress
from .contracts import check_cache_length
from .interventions import Intervention, attached
from .loading import LanguageModel
from .prefix import EnoughLayers, batch_inputs, plan_prefix, run_stack, suffix_tokens_needed

logger = logging.getLogger(__name__)


def _layer_indices(lm: LanguageModel, layers: Sequence[int] | None) -> list[int]:
    count = len(decoder_layers(lm.model))
    if layers is None:
        return list(range(count))
    chosen = sorted({int(layer) for layer in layers})
    bad = [layer for layer in chosen if not 0 <= layer < count]
    if bad:
        raise ValueError(f"Layer(s) {bad} out of range: the model has {count} decoder layers (0..{count - 1})")
    return chosen


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
    same to float noise. The suffix keeps every position the interventions act on (see
    ``prefix``); sliding-window models run whole prompts.
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
    key = fingerprint(
        lm.spec, prompts, chosen, position, str(out_dtype), [i.key() for i in interventions], share_prefix
    )
    journal = BatchJournal(resume_dir, "capture", key)
    done = {} if any(i.records for i in interventions) else journal.finished_tensors()
    stack, modules = decoder_stack(lm.model), decoder_layers(lm.model)
    positions = [position, *(getattr(i, "position", None) for i in interventions)]
    prefix = None
    if len(done) < len(batches) and None not in positions:  # before the hooks attach: the prefix is never intervened on
        prefix = plan_prefix(lm, ids, suffix_tokens_needed(positions), share_prefix, last=modules[chosen[-1]])
    if prefix is not None:
        logger.info("%s: the %d prompts share a prefix of %d tokens, run once", desc, len(prompts), prefix.length)
    result = torch.empty(len(prompts), len(chosen), lm.hidden_size, dtype=out_dtype)
    captured: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output):
            captured[layer] = layer_hidden(output)[:, position, :].detach().to("cpu", out_dtype)
            if layer == chosen[-1]:
                raise EnoughLayers

        return hook

    with attached(lm, interventions):  # attached first: capture hooks then see the intervened stream
        handles = [modules[layer].register_forward_hook(make_hook(layer)) for layer in chosen]
        try:
            bar = progress(len(prompts), desc, show_progress, initial=sum(len(batches[number]) for number in done))
            for number, indices in enumerate(batches):
                if number not in done:
                    captured.clear()
                    rows = [ids[i][prefix.length if prefix else 0 :] for i in indices]
                    batch = batch_inputs(lm, rows, prefix, use_cache=False)
                    for intervention in interventions:
                        intervention.start_batch(indices, batch.attention_mask)
                    with torch.inference_mode():
                        run_stack(stack, **batch.forward_kwargs(stack))
                    if batch.cache is not None:
                        check_cache_length(batch.cache, batch.width, f"{desc}: a batch on the shared prefix")
                    for intervention in interventions:
                        intervention.check_fired(up_to_layer=chosen[-1])
                    done[number] = torch.stack([captured[layer] for layer in chosen], dim=1)
                    journal.record_tensor(number, done[number])
                    bar.update(len(indices))
                result[indices] = done.pop(number)
        finally:
            for handle in handles:
                handle.remove()
            bar.close()
    journal.close()
    return result
