import pytest
import torch

from retraction_kedro.lm import answer_messages, capture_hidden_states, continuation_prompt

from .test_generation import QUESTIONS, system_prompts_for


def relative_error(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()


def prompts_for(lm):
    return [continuation_prompt(lm.tokenizer, answer_messages(q, a)) for q, a in QUESTIONS]


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_batched_capture_equals_per_example(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    batched = capture_hidden_states(lm, prompts, batch_size=4, show_progress=False)
    single = torch.cat([capture_hidden_states(lm, [p], show_progress=False) for p in prompts])
    assert batched.shape == (len(prompts), lm.num_layers, lm.hidden_size)
    assert relative_error(batched, single) < 1e-4


def test_capture_matches_the_models_own_hidden_states(tiny_lm):
    prompt = prompts_for(tiny_lm)[0]
    ids = tiny_lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        reference = tiny_lm.model(**ids, output_hidden_states=True).hidden_states
    captured = capture_hidden_states(tiny_lm, [prompt], position=-2, show_progress=False)[0]
    # hidden_states[i + 1] is the output of layer i (the last one also passes the final norm)
    for layer in range(tiny_lm.num_layers - 1):
        assert relative_error(captured[layer], reference[layer + 1][0, -2]) < 1e-5


def test_layer_subset_is_a_slice_of_all_layers(tiny_lm):
    prompts = prompts_for(tiny_lm)
    full = capture_hidden_states(tiny_lm, prompts, show_progress=False)
    subset = capture_hidden_states(tiny_lm, prompts, layers=[1, 0], show_progress=False)
    assert subset.shape[1] == 2
    assert relative_error(subset, full[:, :2]) < 1e-6


def test_capture_resumes_from_finished_batches(tiny_lm, tmp_path, monkeypatch):
    from retraction_kedro.lm import capture as capture_module

    prompts = prompts_for(tiny_lm)
    expected = capture_hidden_states(tiny_lm, prompts, batch_size=2, show_progress=False)
    original = capture_module.BatchJournal.record_tensor
    recorded = []

    def crash_after_two(self, batch, values):
        original(self, batch, values)
        recorded.append(batch)
        if len(recorded) == 2:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(capture_module.BatchJournal, "record_tensor", crash_after_two)
    with pytest.raises(RuntimeError):
        capture_hidden_states(tiny_lm, prompts, batch_size=2, resume_dir=tmp_path, show_progress=False)
    recorded.clear()
    resumed = capture_hidden_states(tiny_lm, prompts, batch_size=2, resume_dir=tmp_path, show_progress=False)
    assert len(recorded) == 1  # 3 batches, 2 were already on disk
    assert torch.equal(resumed, expected)


def test_capture_rejects_bad_arguments(tiny_lm):
    prompts = prompts_for(tiny_lm)
    with pytest.raises(ValueError, match="out of range"):
        capture_hidden_states(tiny_lm, prompts, layers=[0, 99], show_progress=False)
    with pytest.raises(ValueError, match="must be negative"):
        capture_hidden_states(tiny_lm, prompts, position=0, show_progress=False)


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("position", [-1, -2])
@pytest.mark.parametrize("layers", [None, [1]])
def test_shared_prefix_equals_unshared(fixture, batch_size, position, layers, request, caplog):
    lm = request.getfixturevalue(fixture)
    prompts = system_prompts_for(lm)
    kwargs = dict(layers=layers, position=position, batch_size=batch_size, show_progress=False)
    with caplog.at_level("INFO", logger="retraction_kedro.lm.capture"):
        shared = capture_hidden_states(lm, prompts, **kwargs)
    assert "share a prefix of" in caplog.text  # the shared path really ran
    unshared = capture_hidden_states(lm, prompts, share_prefix=False, **kwargs)
    assert shared.shape == unshared.shape
    assert relative_error(shared, unshared) < 1e-4


def test_shared_prefix_length_leaves_the_captured_positions():
    from retraction_kedro.lm.prefix import shared_prefix_length, suffix_tokens_needed

    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8]], keep=1) == 5
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8]], keep=2) == 4
    assert shared_prefix_length([[1, 2, 3, 9, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8]], keep=1) == 3
    assert shared_prefix_length([[1, 2], [3, 4]], keep=1) == 0
    assert shared_prefix_length([[1], [1, 2]], keep=1) == 0
    # a one-token suffix would pass for a decode step; interventions further back widen it
    assert suffix_tokens_needed([-1]) == 2 and suffix_tokens_needed([-1, -3]) == 3


@pytest.mark.parametrize("position", [-1, -2, -3])
def test_shared_prefix_is_shortened_for_a_prompt_that_is_the_prefix_plus_one_token(tiny_lm, position, caplog):
    base = system_prompts_for(tiny_lm)[0]
    prompts = [base, base + " Berlin is a city in Germany.", base + " No."]
    lengths = [len(ids) for ids in tiny_lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    assert lengths[1] > lengths[0] and lengths[2] > lengths[0]
    kwargs = dict(position=position, batch_size=2, show_progress=False)
    with caplog.at_level("INFO", logger="retraction_kedro.lm.capture"):
        shared = capture_hidden_states(tiny_lm, prompts, **kwargs)
    kept = max(2, -position)  # the first prompt keeps -position tokens, and never fewer than 2
    assert f"share a prefix of {lengths[0] - kept} tokens" in caplog.text
    unshared = capture_hidden_states(tiny_lm, prompts, share_prefix=False, **kwargs)
    assert relative_error(shared, unshared) < 1e-4


def test_prompts_without_a_common_prefix_take_the_unshared_path(tiny_lm, caplog):
    prompts = prompts_for(tiny_lm) + ["Lyon is not in Germany, it is in France."]
    with caplog.at_level("INFO", logger="retraction_kedro.lm.capture"):
        shared = capture_hidden_states(tiny_lm, prompts, batch_size=3, show_progress=False)
    assert "share a prefix of" not in caplog.text
    unshared = capture_hidden_states(tiny_lm, prompts, batch_size=3, share_prefix=False, show_progress=False)
    assert torch.equal(shared, unshared)


def test_shared_prefix_resumes_from_finished_batches(tiny_lm, tmp_path, monkeypatch):
    from retraction_kedro.lm import capture as capture_module

    prompts = system_prompts_for(tiny_lm)
    expected = capture_hidden_states(tiny_lm, prompts, batch_size=2, show_progress=False)
    original = capture_module.BatchJournal.record_tensor

    def crash_after_one(self, batch, values):
        original(self, batch, values)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(capture_module.BatchJournal, "record_tensor", crash_after_one)
    with pytest.raises(RuntimeError):
        capture_hidden_states(tiny_lm, prompts, batch_size=2, resume_dir=tmp_path, show_progress=False)
    monkeypatch.setattr(capture_module.BatchJournal, "record_tensor", original)
    resumed = capture_hidden_states(tiny_lm, prompts, batch_size=2, resume_dir=tmp_path, show_progress=False)
    assert torch.equal(resumed, expected)
