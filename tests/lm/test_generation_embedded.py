"""Generation on the real embedded model: sampling does not depend on batching, greedy equals ``generate``."""

import random

import pytest

from retraction_kedro.lm import GenerationSettings, chat_prompt, generate_texts

from .test_generation import transformers_greedy

pytestmark = pytest.mark.embedded

COUNTRIES = ["Kenya", "Peru", "Norway", "Vietnam", "Chile", "Egypt", "Poland", "Canada", "Ghana"]
TEMPLATES = ["Name a city in {}.", "Which continent is {} in?", "Name a river in {}, please."]


@pytest.fixture(scope="module")
def prompts(embedded_lm):
    system = {"role": "system", "content": "Answer with a name only."}
    questions = [template.format(country) for country in COUNTRIES for template in TEMPLATES]
    return [chat_prompt(embedded_lm.tokenizer, [system, {"role": "user", "content": q}]) for q in questions]


def test_one_seed_gives_the_same_samples_at_batch_1_8_and_32_in_any_order(embedded_lm, prompts):
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=0.7, top_p=0.95, seed=3)
    runs = {
        size: generate_texts(
            embedded_lm, prompts, GenerationSettings(**{**settings.__dict__, "batch_size": size}), show_progress=False
        )
        for size in (1, 8, 32)
    }
    order = list(range(len(prompts)))
    random.Random(1).shuffle(order)
    shuffled = generate_texts(
        embedded_lm,
        [prompts[i] for i in order],
        GenerationSettings(**{**settings.__dict__, "batch_size": 8}),
        show_progress=False,
    )
    assert runs[1] == runs[8] == runs[32]
    assert [shuffled[order.index(i)] for i in range(len(prompts))] == runs[32]
    other_seed = generate_texts(
        embedded_lm,
        prompts,
        GenerationSettings(**{**settings.__dict__, "seed": 4, "batch_size": 32}),
        show_progress=False,
    )
    assert other_seed != runs[32]  # the seed matters


def test_greedy_equals_transformers_generate(embedded_lm, prompts):
    chosen = prompts[::4]
    settings = GenerationSettings(max_new_tokens=12, stop_at_newline=False, batch_size=len(chosen))
    assert generate_texts(embedded_lm, chosen, settings, show_progress=False) == [
        transformers_greedy(embedded_lm, prompt, 12) for prompt in chosen
    ]
