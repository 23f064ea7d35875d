import pytest
import torch

from retraction_kedro.lm import GenerationSettings, answer_messages, continuation_prompt, generate_texts
from retraction_kedro.lm.generation import generate_with_counts
from tests.conftest import crash_generate_on_call

QUESTIONS = [
    ("Name a city in Germany.", "Lyon"),
    ("Which country is Lyon in? Answer with the country that the city belongs to.", "France"),
    ("Capital of Italy?", "Rome"),
    ("Name a city.", "Paris"),
    ("Name a city in France that is not the capital of France and is large.", "Berlin"),
]


def prompts_for(lm):
    return [continuation_prompt(lm.tokenizer, answer_messages(q, a)) for q, a in QUESTIONS]


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_batched_greedy_equals_per_example(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    settings = GenerationSettings(max_new_tokens=12, batch_size=3, stop_at_newline=False)
    batched = generate_texts(lm, prompts, settings, show_progress=False)
    single = [generate_texts(lm, [p], settings, show_progress=False)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # the prompts really lead to different continuations


def test_stop_at_newline_cuts_each_row_at_its_first_newline(tiny_lm):
    prompts = prompts_for(tiny_lm)
    free = generate_texts(tiny_lm, prompts, GenerationSettings(max_new_tokens=20, stop_at_newline=False), show_progress=False)
    cut = generate_texts(tiny_lm, prompts, GenerationSettings(max_new_tokens=20, stop_at_newline=True), show_progress=False)
    for whole, first_line in zip(free, cut):
        assert "\n" not in first_line
        assert whole.split("\n", 1)[0] == first_line


def test_sampling_is_reproducible_per_seed(tiny_lm):
    prompts = prompts_for(tiny_lm)
    settings = GenerationSettings(max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.95, seed=7, batch_size=2)
    first = generate_texts(tiny_lm, prompts, settings, show_progress=False)
    assert first == generate_texts(tiny_lm, prompts, settings, show_progress=False)
    other = GenerationSettings(**{**settings.__dict__, "seed": 8})
    assert first != generate_texts(tiny_lm, prompts, other, show_progress=False)


def test_forced_token_count(tiny_lm):
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6, stop_at_newline=False, batch_size=5)
    pairs = generate_with_counts(tiny_lm, prompts_for(tiny_lm), settings, show_progress=False)
    assert [count for _, count in pairs] == [6] * len(QUESTIONS)
    free = GenerationSettings(max_new_tokens=6, stop_at_newline=True, batch_size=5)
    assert all(1 <= count <= 6 for _, count in generate_with_counts(tiny_lm, prompts_for(tiny_lm), free, show_progress=False))


def test_resume_skips_finished_batches(tiny_lm, tmp_path, monkeypatch):
    prompts = prompts_for(tiny_lm)
    settings = GenerationSettings(max_new_tokens=5, batch_size=2)  # 3 batches
    expected = generate_texts(tiny_lm, prompts, settings, show_progress=False)

    real_generate = tiny_lm.model.generate
    crash_generate_on_call(monkeypatch, tiny_lm, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_texts(tiny_lm, prompts, settings, resume_dir=tmp_path, show_progress=False)
    monkeypatch.setattr(tiny_lm.model, "generate", real_generate)
    calls = crash_generate_on_call(monkeypatch, tiny_lm, 0)  # counts calls, never crashes
    resumed = generate_texts(tiny_lm, prompts, settings, resume_dir=tmp_path, show_progress=False)
    assert resumed == expected
    assert len(calls) == 1  # only the batch that crashed was redone
    assert not any(tmp_path.iterdir())  # the journal is removed once the work is complete


def test_empty_input_and_bad_settings(tiny_lm):
    assert generate_texts(tiny_lm, [], GenerationSettings()) == []
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="Unknown generation parameter"):
        GenerationSettings.from_params({"max_tokens": 3})
