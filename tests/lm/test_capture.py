import pytest
import torch

from retraction_kedro.lm import answer_messages, capture_hidden_states, continuation_prompt

from .test_generation import QUESTIONS


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
