import random

import pytest

from retraction_kedro.lm import GenerationSettings, answer_messages, continuation_prompt, generate_texts
from retraction_kedro.lm import generation as generation_module
from retraction_kedro.lm.batching import BatchJournal
from retraction_kedro.lm.generation import example_seeds, generate_with_counts, sample_texts
from retraction_kedro.lm.tiny import QUESTIONS, SYSTEM

def prompts_for(lm):
    return [continuation_prompt(lm.tokenizer, answer_messages(q, a)) for q, a in QUESTIONS]


def system_prompts_for(lm):
    """Chat prompts whose system turn is one long shared token prefix; the suffixes differ in length."""
    return [continuation_prompt(lm.tokenizer, answer_messages(q, a, system=SYSTEM)) for q, a in QUESTIONS]


def many_prompts_for(lm):
    """40 prompts of varied length (every question with several answers), one of them twice."""
    answers = ["Lyon", "France", "Rome", "Paris", "Berlin", "Madrid", "Italy", "Germany is not it"]
    prompts = [
        continuation_prompt(lm.tokenizer, answer_messages(q, a, system=SYSTEM)) for q, _ in QUESTIONS for a in answers
    ]
    return prompts[:-1] + prompts[:1]


def transformers_greedy(lm, prompt: str, max_new_tokens: int) -> str:
    """transformers' own greedy ``generate`` on the unpadded prompt: the reference."""
    ids = lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    output = lm.model.generate(
        **ids, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
        eos_token_id=generation_module.end_of_turn_ids(lm), pad_token_id=lm.tokenizer.pad_token_id,
    )  # fmt: skip
    return lm.tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_batched_greedy_equals_per_example(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    settings = GenerationSettings(max_new_tokens=12, batch_size=3, stop_at_newline=False)
    batched = generate_texts(lm, prompts, settings, show_progress=False)
    single = [generate_texts(lm, [p], settings, show_progress=False)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # the prompts really lead to different continuations


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
@pytest.mark.parametrize("system", [False, True])
def test_greedy_equals_transformers_generate(fixture, system, request, caplog):
    lm = request.getfixturevalue(fixture)
    prompts = system_prompts_for(lm) if system else prompts_for(lm)
    settings = GenerationSettings(max_new_tokens=12, batch_size=3, stop_at_newline=False)
    with caplog.at_level("INFO", logger="retraction_kedro.lm.generation"):
        batched = generate_texts(lm, prompts, settings, show_progress=False)
    assert "share a prefix of" in caplog.text  # the chat template's opening tokens (and the system turn) ran once
    single = [generate_texts(lm, [p], settings, show_progress=False)[0] for p in prompts]
    reference = [transformers_greedy(lm, p, 12) for p in prompts]
    assert batched == reference
    assert single == reference
    unshared = generate_texts(
        lm, prompts, GenerationSettings(**{**settings.__dict__, "share_prefix": False}), show_progress=False
    )
    assert unshared == reference


def test_stop_at_newline_cuts_each_row_at_its_first_newline(tiny_lm):
    prompts = prompts_for(tiny_lm)
    free = generate_texts(
        tiny_lm, prompts, GenerationSettings(max_new_tokens=20, stop_at_newline=False), show_progress=False
    )
    cut = generate_texts(
        tiny_lm, prompts, GenerationSettings(max_new_tokens=20, stop_at_newline=True), show_progress=False
    )
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


def test_samples_do_not_depend_on_batch_size_or_order(tiny_lm):
    prompts = many_prompts_for(tiny_lm)
    settings = GenerationSettings(
        max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.9, seed=11, stop_at_newline=False
    )
    runs = {
        size: generate_texts(
            tiny_lm, prompts, GenerationSettings(**{**settings.__dict__, "batch_size": size}), show_progress=False
        )
        for size in (1, 8, 32)
    }
    order = list(range(len(prompts)))
    random.Random(0).shuffle(order)
    shuffled = generate_texts(
        tiny_lm,
        [prompts[i] for i in order],
        GenerationSettings(**{**settings.__dict__, "batch_size": 8}),
        show_progress=False,
    )
    assert runs[1] == runs[8] == runs[32]
    assert [shuffled[order.index(i)] for i in range(len(prompts))] == runs[8]
    greedy = generate_texts(
        tiny_lm,
        prompts,
        GenerationSettings(max_new_tokens=10, stop_at_newline=False, batch_size=32),
        show_progress=False,
    )
    assert sum(a != b for a, b in zip(runs[8], greedy)) > len(prompts) // 2  # really sampled


def test_several_seeds_in_one_call_give_each_seed_its_own_call_s_samples(tiny_lm):
    prompts = many_prompts_for(tiny_lm)[:12]
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=1.0, top_p=0.9, stop_at_newline=False, batch_size=8)
    together = sample_texts(tiny_lm, prompts, settings, [3, 4], show_progress=False)
    apart = {seed: generate_texts(tiny_lm, prompts, GenerationSettings(**{**settings.__dict__, "seed": seed}), show_progress=False) for seed in (3, 4)}
    assert together == apart and together[3] != together[4]
    with pytest.raises(ValueError, match="do_sample"):
        sample_texts(tiny_lm, prompts, GenerationSettings(max_new_tokens=2), [0])


def test_example_seeds_follow_the_prompt_and_its_occurrence():
    seeds = example_seeds(["a", "b", "a"], seed=5)
    assert len(set(seeds)) == 3  # the repeated prompt draws its own stream
    assert example_seeds(["b", "a", "a"], seed=5) == [seeds[1], seeds[0], seeds[2]]
    assert example_seeds(["a"], seed=6) != seeds[:1]


def test_forced_token_count(tiny_lm):
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6, stop_at_newline=False, batch_size=5)
    pairs = generate_with_counts(tiny_lm, prompts_for(tiny_lm), settings, show_progress=False)
    assert [count for _, count in pairs] == [6] * len(QUESTIONS)
    free = GenerationSettings(max_new_tokens=6, stop_at_newline=True, batch_size=5)
    assert all(
        1 <= count <= 6 for _, count in generate_with_counts(tiny_lm, prompts_for(tiny_lm), free, show_progress=False)
    )


def crash_after_finishing(monkeypatch, rows: int) -> list[int]:
    """Make generation raise once ``rows`` examples have finished and been journaled (0: never); returns the
    examples journaled, as a log."""
    real, journaled = BatchJournal.record_rows, []

    def record_rows(self, results):
        real(self, results)
        journaled.extend(results)
        if rows and len(journaled) >= rows:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(BatchJournal, "record_rows", record_rows)
    return journaled


@pytest.mark.parametrize("do_sample", [False, True])
def test_resume_redoes_only_the_examples_that_had_not_finished(tiny_lm, tmp_path, monkeypatch, do_sample):
    """The unit of resume is one example: a crash in the middle of a batch keeps every example that ended before it."""
    prompts = many_prompts_for(tiny_lm)[:12]
    settings = GenerationSettings(max_new_tokens=8, batch_size=8, do_sample=do_sample, seed=3, stop_at_newline=False)
    expected = generate_texts(tiny_lm, prompts, settings, show_progress=False)

    with monkeypatch.context() as patch:
        before = crash_after_finishing(patch, 5)
        with pytest.raises(RuntimeError, match="simulated crash"):
            generate_texts(tiny_lm, prompts, settings, resume_dir=tmp_path, show_progress=False)
    after = crash_after_finishing(monkeypatch, 0)  # logs, never crashes
    resumed = generate_texts(tiny_lm, prompts, settings, resume_dir=tmp_path, show_progress=False)
    assert resumed == expected
    assert 5 <= len(before) < len(prompts) and sorted(before + after) == list(range(len(prompts)))  # none redone
    assert not any(tmp_path.iterdir())  # the journal is removed once the work is complete


def test_empty_input_and_bad_settings(tiny_lm):
    assert generate_texts(tiny_lm, [], GenerationSettings()) == []
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="Unknown generation parameter"):
        GenerationSettings.from_params({"max_tokens": 3})
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationSettings(max_new_tokens=4, min_new_tokens=5)
