import pytest
import torch

from retraction_kedro.lm import GenerationSettings, RowSteering, Steering, ValuePatch, capture_hidden_states, generate_texts
from retraction_kedro.lm.batching import BatchJournal

from .test_generation import prompts_for

GREEDY = GenerationSettings(max_new_tokens=8, stop_at_newline=False, batch_size=3)


def directions(lm, seed=0):
    return torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_alpha_zero_reproduces_unsteered_greedy_outputs(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    plain = generate_texts(lm, prompts, GREEDY, show_progress=False)
    steered = generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[Steering(directions(lm), [0, 1], 0.0)])
    assert steered == plain
    pushed = generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[Steering(directions(lm), [0, 1], 8.0)])
    assert pushed != plain
    assert generate_texts(lm, prompts, GREEDY, show_progress=False) == plain  # hooks are gone afterwards


def test_steering_changes_only_the_chosen_layer_and_position(tiny_lm):
    prompts = prompts_for(tiny_lm)
    v = directions(tiny_lm)
    steer = [Steering(v, [1], 2.0)]
    # both runs share the prompts' prefix the same way (the prefix runs before the hooks): compare bit for bit
    base_last = capture_hidden_states(tiny_lm, prompts, show_progress=False)
    steered_last = capture_hidden_states(tiny_lm, prompts, show_progress=False, interventions=steer)
    base_prev = capture_hidden_states(tiny_lm, prompts, position=-2, show_progress=False)
    steered_prev = capture_hidden_states(tiny_lm, prompts, position=-2, show_progress=False, interventions=steer)
    assert torch.equal(steered_last[:, 0], base_last[:, 0])  # below the steered layer
    assert torch.allclose(steered_last[:, 1] - base_last[:, 1], (2.0 * v[1]).expand(len(prompts), -1), atol=1e-5)
    assert not torch.allclose(steered_last[:, 2], base_last[:, 2])  # the change propagates upwards
    assert torch.equal(steered_prev, base_prev)  # earlier positions never see it


def test_batched_steering_equals_per_example_steering(tiny_lm):
    prompts = prompts_for(tiny_lm)
    steer = [Steering(directions(tiny_lm), [0, 2], 3.0)]
    batched = generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=steer)
    single = [generate_texts(tiny_lm, [p], GREEDY, show_progress=False, interventions=steer)[0] for p in prompts]
    assert batched == single


def test_every_token_steering_also_acts_on_generated_tokens(tiny_lm):
    prompts = prompts_for(tiny_lm)
    v = directions(tiny_lm, seed=3)
    prompt_only = generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[Steering(v, [1], 4.0)])
    every = generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[Steering(v, [1], 4.0, every_token=True)])
    assert every != prompt_only


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_patching_a_run_with_its_own_values_reproduces_it(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    recorder = ValuePatch(range(lm.num_layers), "record")
    plain = generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[recorder])
    assert recorder.values[0].shape[0] == len(prompts)
    patched = generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[ValuePatch(range(lm.num_layers), "patch", recorder.values)])
    assert patched == plain


def test_patching_steered_values_moves_the_unsteered_run(tiny_lm):
    prompts = prompts_for(tiny_lm)
    layers = list(range(tiny_lm.num_layers))
    recorder = ValuePatch(layers, "record")
    generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[Steering(directions(tiny_lm), [0], 6.0), recorder])
    base = capture_hidden_states(tiny_lm, prompts, show_progress=False)
    patched = capture_hidden_states(tiny_lm, prompts, show_progress=False, interventions=[ValuePatch(layers, "patch", recorder.values)])
    # steering after layer 0 leaves layer 0's own values untouched, so only the layers above move
    assert torch.allclose(patched[:, 0], base[:, 0], atol=1e-5)
    assert not torch.allclose(patched[:, -1], base[:, -1])


def test_bad_interventions_fail_clearly(tiny_lm):
    with pytest.raises(ValueError, match="outside the 3 layers"):
        Steering(directions(tiny_lm), [5], 1.0)
    with pytest.raises(ValueError, match="needs recorded values"):
        ValuePatch([0], "patch")


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_attention_patch_with_its_own_weights_reproduces_the_run(fixture, request):
    from retraction_kedro.lm import AttentionPatch

    lm = request.getfixturevalue(fixture)
    prompts = prompts_for(lm)
    plain = generate_texts(lm, prompts, GREEDY, show_progress=False)
    recorder = AttentionPatch(range(lm.num_layers), "record")
    assert generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[recorder]) == plain  # eager == sdpa
    assert lm.model.config._attn_implementation != "retraction_eager"  # restored afterwards
    patched = generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[AttentionPatch(range(lm.num_layers), "patch", recorder.weights)])
    assert patched == plain


def test_attention_patch_from_a_steered_run_changes_the_unsteered_one(tiny_lm):
    from retraction_kedro.lm import AttentionPatch, top_changed_heads

    prompts = prompts_for(tiny_lm)
    layers = list(range(tiny_lm.num_layers))
    before, after = AttentionPatch(layers, "record"), AttentionPatch(layers, "record")
    generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[before])
    generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[Steering(directions(tiny_lm), [0], 8.0), after])
    heads = top_changed_heads(before.weights, after.weights, k=3)
    assert sum(len(h) for h in heads.values()) == 3 and 0 not in heads  # layer 0's queries precede the steering
    base = capture_hidden_states(tiny_lm, prompts, batch_size=3, show_progress=False)  # the recording's batches
    patched = capture_hidden_states(
        tiny_lm, prompts, batch_size=3, show_progress=False, interventions=[AttentionPatch(layers, "patch", after.weights, heads=heads)]
    )
    assert not torch.allclose(patched[:, -1], base[:, -1])


def test_two_attention_recordings_in_one_run_then_the_models_own_attention_again(tiny_lm):
    from retraction_kedro.lm import AttentionPatch

    prompts = prompts_for(tiny_lm)
    default = tiny_lm.model.config._attn_implementation
    alone = AttentionPatch([1], "record")
    capture_hidden_states(tiny_lm, prompts, show_progress=False, interventions=[alone])
    last, earlier = AttentionPatch([1], "record"), AttentionPatch([1], "record", position=-2)
    capture_hidden_states(tiny_lm, prompts, show_progress=False, interventions=[last, earlier])
    assert tiny_lm.model.config._attn_implementation == default  # not the first one's view of the second's switch
    assert all(torch.equal(last.weights[1][row], weights) for row, weights in alone.weights[1].items())
    assert not torch.equal(earlier.weights[1][0], last.weights[1][0])


def test_steering_at_an_earlier_prompt_position(tiny_lm):
    prompts = prompts_for(tiny_lm)
    v = directions(tiny_lm)
    base = capture_hidden_states(tiny_lm, prompts, position=-2, show_progress=False)
    steered = capture_hidden_states(tiny_lm, prompts, position=-2, show_progress=False, interventions=[Steering(v, [1], 2.0, position=-2)])
    assert torch.allclose(steered[:, 1] - base[:, 1], (2.0 * v[1]).expand(len(prompts), -1), atol=1e-5)


def test_ablation_removes_the_component_along_the_direction(tiny_lm):
    prompts = prompts_for(tiny_lm)
    v = directions(tiny_lm)
    ablated = capture_hidden_states(tiny_lm, prompts, layers=[1], show_progress=False, interventions=[Steering(v, [1], 0.0, ablate=True)])
    unit = v[1] / v[1].norm()
    assert (ablated[:, 0] @ unit).abs().max() < 1e-3


def test_a_recording_run_never_takes_batches_from_the_resume_journal(tiny_lm, tmp_path, monkeypatch):
    prompts = prompts_for(tiny_lm)
    clean = ValuePatch([0], "record")
    generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[clean])
    record_rows = BatchJournal.record_rows

    def crash_after_the_first_rows(self, results):
        record_rows(self, results)
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(BatchJournal, "record_rows", crash_after_the_first_rows)
        with pytest.raises(RuntimeError, match="simulated crash"):
            generate_texts(tiny_lm, prompts, GREEDY, resume_dir=tmp_path, show_progress=False, interventions=[ValuePatch([0], "record")])
    assert any(tmp_path.iterdir())  # the first examples are in the journal
    again = ValuePatch([0], "record")
    generate_texts(tiny_lm, prompts, GREEDY, resume_dir=tmp_path, show_progress=False, interventions=[again])
    assert torch.equal(again.values[0], clean.values[0])  # every row recorded, none taken from the journal


@pytest.mark.parametrize("every_token", [False, True])
def test_row_steering_gives_each_row_what_its_own_call_gives(tiny_lm, every_token):
    """Settings that differ only in their vectors share one call and its batches (rows of different settings side by
    side, entering as others finish); each row's text is what a call of its setting alone gives."""
    prompts = prompts_for(tiny_lm)
    v, w = directions(tiny_lm), directions(tiny_lm, seed=1)
    settings = [Steering(v, [1], 4.0, every_token), Steering(w, [0, 2], -3.0, every_token), None]
    alone = [generate_texts(tiny_lm, prompts, GREEDY, show_progress=False, interventions=[s] if s else []) for s in settings]
    per_row = [setting for setting in settings for _ in prompts]
    together = generate_texts(tiny_lm, prompts * len(settings), GREEDY, show_progress=False, interventions=[RowSteering(per_row)])
    assert together == alone[0] + alone[1] + alone[2]
    assert len({tuple(texts) for texts in alone}) == 3  # the settings really differ


def test_row_steering_in_capture_and_its_refusals(tiny_lm):
    prompts = prompts_for(tiny_lm)
    v = directions(tiny_lm)
    steered = capture_hidden_states(tiny_lm, prompts, show_progress=False, interventions=[Steering(v, [1], 2.0)])
    plain = capture_hidden_states(tiny_lm, prompts, show_progress=False)
    mixed = capture_hidden_states(tiny_lm, prompts * 2, batch_size=3, show_progress=False,
                                  interventions=[RowSteering([Steering(v, [1], 2.0)] * 5 + [None] * 5)])  # fmt: skip
    expected = torch.cat([steered, plain])
    assert ((mixed - expected).norm(dim=-1) / expected.norm(dim=-1)).max() < 1e-5
    with pytest.raises(ValueError, match="ablation"):
        RowSteering([Steering(v, [1], 0.0, ablate=True)])
    with pytest.raises(ValueError, match="same position"):
        RowSteering([Steering(v, [1], 1.0), Steering(v, [1], 1.0, position=-2)])
