"""Batched, left-padded, resumable generation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from .architecture import input_device
from .batching import BatchJournal, fingerprint, plan_batches, progress
from .interventions import Intervention, attached
from .loading import LanguageModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_newline: bool = True
    min_new_tokens: int = 0  # > 0 forces equal token counts (benchmarks)
    batch_size: int = 16

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> "GenerationSettings":
        merged = {**params, **overrides}
        unknown = sorted(set(merged) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Unknown generation parameter(s) {unknown}; expected some of {sorted(cls.__dataclass_fields__)}")
        return cls(**merged)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


@lru_cache(maxsize=8)
def _newline_token_ids(tokenizer: Any) -> torch.Tensor:
    vocab = tokenizer.get_vocab()
    ids = [i for i in vocab.values() if "\n" in tokenizer.decode([i])]
    return torch.tensor(sorted(ids), dtype=torch.long)


class StopAtNewline(StoppingCriteria):
    """Per-row stop once a generated token contains a newline (rows finish independently)."""

    def __init__(self, newline_ids: torch.Tensor):
        self.newline_ids = newline_ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.isin(input_ids[:, -1], self.newline_ids.to(input_ids.device))


def end_of_turn_ids(lm: LanguageModel) -> list[int]:
    ids: set[int] = set()
    configured = lm.model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return sorted(ids)


def tokenize_lengths(lm: LanguageModel, prompts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in lm.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]


def encode_batch(lm: LanguageModel, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    encoded = lm.tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    device = input_device(lm.model)
    return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}


def _trim(text: str, stop_at_newline: bool) -> str:
    return text.split("\n", 1)[0] if stop_at_newline else text


def _new_token_counts(new_tokens: torch.Tensor, eos: list[int], pad: int | None) -> list[int]:
    """Tokens each row really generated (its stop token included, padding after it excluded)."""
    counts = []
    for row in new_tokens.tolist():
        count = len(row)
        for position, token in enumerate(row):
            if token in eos:
                count = position + 1
                break
            if token == pad:
                count = position
                break
        counts.append(count)
    return counts


def generate_texts(
    lm: LanguageModel,
    prompts: Sequence[str],
    settings: GenerationSettings,
    resume_dir: str | None = None,
    desc: str = "generate",
    show_progress: bool = True,
    interventions: Sequence[Intervention] = (),
) -> list[str]:
    """Continue every prompt; results come back in input order."""
    return [text for text, _ in generate_with_counts(lm, prompts, settings, resume_dir, desc, show_progress, interventions)]


def generate_with_counts(
    lm: LanguageModel,
    prompts: Sequence[str],
    settings: GenerationSettings,
    resume_dir: str | None = None,
    desc: str = "generate",
    show_progress: bool = True,
    interventions: Sequence[Intervention] = (),
) -> list[tuple[str, int]]:
    """(continuation, number of generated tokens) per prompt, in input order.

    Sampling is seeded per batch (``seed`` + batch number), so a resumed run draws
    the same samples as an uninterrupted one. ``interventions`` (steering, patching)
    are hooked in for this call only and are part of the resume journal's key.
    """
    prompts = list(prompts)
    if not prompts:
        return []
    batches = plan_batches(tokenize_lengths(lm, prompts), settings.batch_size)
    journal = BatchJournal(
        resume_dir, "generate", fingerprint(lm.spec, asdict(settings), prompts, [i.key() for i in interventions])
    )
    done = {} if any(i.records for i in interventions) else journal.finished_texts()
    criteria = StoppingCriteriaList()
    if settings.stop_at_newline:
        criteria.append(StopAtNewline(_newline_token_ids(lm.tokenizer)))
    eos = end_of_turn_ids(lm)
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
        if settings.do_sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    results: list[tuple[str, int] | None] = [None] * len(prompts)
    with attached(lm, interventions):
        for number, indices in progress(enumerate(batches), len(batches), desc, show_progress):
            if number in done:
                pairs = done[number]
            else:
                pairs = _generate_batch(lm, [prompts[i] for i in indices], indices, number, settings, criteria, eos, sampling, interventions)
                journal.record_texts(number, pairs)
            for index, (text, count) in zip(indices, pairs):
                results[index] = (text, count)
    journal.close()
    return results  # type: ignore[return-value]


def _generate_batch(lm, batch_prompts, indices, number, settings, criteria, eos, sampling, interventions) -> list[tuple[str, int]]:
    for intervention in interventions:
        intervention.start_batch(indices)
    inputs = encode_batch(lm, batch_prompts)
    with torch.random.fork_rng(devices=[] if lm.device.type != "cuda" else None):
        torch.manual_seed(settings.seed * 1_000_003 + number)
        with torch.inference_mode():
            output = lm.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                min_new_tokens=settings.min_new_tokens or None,
                stopping_criteria=criteria,
                eos_token_id=eos,
                pad_token_id=lm.tokenizer.pad_token_id,
                **sampling,
            )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    texts = lm.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    counts = _new_token_counts(new_tokens, eos, lm.tokenizer.pad_token_id)
    return [(_trim(text, settings.stop_at_newline), count) for text, count in zip(texts, counts)]
