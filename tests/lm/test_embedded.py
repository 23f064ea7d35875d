"""Batched equals per-example on the real embedded model (prompts of different lengths)."""

import pytest
import torch

from retraction_kedro.lm import (
    GenerationSettings,
    answer_messages,
    capture_hidden_states,
    continuation_prompt,
    generate_texts,
)

pytestmark = pytest.mark.embedded

CASES = [
    ("Name a city in Germany.", "Lyon"),
    ("Name a country that uses the Euro as its official currency.", "Brazil"),
    ("Which continent is Kenya in?", "Africa"),
    ("Name a city in Japan that has more than one million inhabitants.", "Osaka"),
    ("Name a river.", "Danube"),
    ("What is the capital of Canada? Give only the city name, please.", "Toronto"),
]


@pytest.fixture(scope="module")
def prompts(embedded_lm):
    return [continuation_prompt(embedded_lm.tokenizer, answer_messages(q, a)) for q, a in CASES]


def test_hidden_states_batched_equal_per_example(embedded_lm, prompts):
    batched = capture_hidden_states(embedded_lm, prompts, batch_size=len(prompts), show_progress=False)
    single = torch.cat([capture_hidden_states(embedded_lm, [p], show_progress=False) for p in prompts])
    error = (batched - single).norm(dim=-1) / single.norm(dim=-1)
    print(f"max relative error over {error.numel()} (example, layer) pairs: {error.max().item():.2e}")
    assert error.max().item() < 1e-4


@pytest.mark.parametrize("position", [-1, -2])
def test_hidden_states_with_shared_prefix_equal_unshared(embedded_lm, prompts, position):
    kwargs = dict(position=position, batch_size=4, show_progress=False)
    shared = capture_hidden_states(embedded_lm, prompts, **kwargs)
    unshared = capture_hidden_states(embedded_lm, prompts, share_prefix=False, **kwargs)
    error = (shared - unshared).norm(dim=-1) / unshared.norm(dim=-1)
    print(f"shared prefix, position {position}: max relative error {error.max().item():.2e}")
    assert error.max().item() < 1e-4


def test_greedy_continuations_batched_equal_per_example(embedded_lm, prompts):
    settings = GenerationSettings(max_new_tokens=24, batch_size=len(prompts))
    batched = generate_texts(embedded_lm, prompts, settings, show_progress=False)
    single = [generate_texts(embedded_lm, [p], settings, show_progress=False)[0] for p in prompts]
    assert batched == single
    assert all(text.strip() for text in batched)
