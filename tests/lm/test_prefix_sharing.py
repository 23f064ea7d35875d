"""Interventions stay exact when the prompts' shared prefix runs once: the same runs without sharing agree."""

import pytest
import torch

from retraction_kedro.lm import (
    AttentionPatch,
    GenerationSettings,
    Steering,
    ValuePatch,
    capture_hidden_states,
    generate_texts,
)

from .test_generation import system_prompts_for

SHARED = GenerationSettings(max_new_tokens=8, stop_at_newline=False, batch_size=3)
UNSHARED = GenerationSettings(max_new_tokens=8, stop_at_newline=False, batch_size=3, share_prefix=False)


def directions(lm, seed=0):
    return torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(seed))


def generate(lm, settings, interventions, caplog=None):
    if caplog is None:
        return generate_texts(lm, system_prompts_for(lm), settings, show_progress=False, interventions=interventions)
    caplog.clear()
    with caplog.at_level("INFO", logger="retraction_kedro.lm.generation"):
        texts = generate_texts(lm, system_prompts_for(lm), settings, show_progress=False, interventions=interventions)
    assert ("share a prefix of" in caplog.text) == settings.share_prefix  # the path under test really ran
    return texts


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
@pytest.mark.parametrize("position", [-1, -2])
def test_steering_with_a_shared_prefix_equals_whole_prompts(fixture, position, request, caplog):
    lm = request.getfixturevalue(fixture)
    steer = [Steering(directions(lm), [0, 1], 6.0, position=position)]
    shared = generate(lm, SHARED, steer, caplog)
    assert shared == generate(lm, UNSHARED, steer, caplog)
    assert shared != generate(lm, SHARED, [])  # the steering acts on the shared path


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_value_patch_with_a_shared_prefix_equals_whole_prompts(fixture, request, caplog):
    lm = request.getfixturevalue(fixture)
    layers = list(range(lm.num_layers))
    plain = generate(lm, SHARED, [])
    runs = {}
    for settings in (SHARED, UNSHARED):
        steered = ValuePatch(layers, "record", position=-2)
        generate(lm, settings, [Steering(directions(lm), [0], 8.0, position=-2), steered], caplog)
        own = ValuePatch(layers, "record", position=-2)
        assert generate(lm, settings, [own], caplog) == plain  # recording changes nothing
        assert (
            generate(lm, settings, [ValuePatch(layers, "patch", own.values, position=-2)], caplog) == plain
        )  # round trip
        runs[settings.share_prefix] = (
            steered.values,
            generate(lm, settings, [ValuePatch(layers, "patch", steered.values, position=-2)], caplog),
        )
    for layer in layers:  # the same rows and positions were recorded
        assert torch.allclose(runs[True][0][layer], runs[False][0][layer], rtol=1e-4, atol=1e-5)
    assert runs[True][1] == runs[False][1]
    assert runs[True][1] != plain  # the patched values move the run


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_qwen"])
def test_attention_patch_with_a_shared_prefix_equals_whole_prompts(fixture, request, caplog):
    lm = request.getfixturevalue(fixture)
    layers = list(range(1, lm.num_layers))
    plain = generate(lm, SHARED, [])
    runs = {}
    for settings in (SHARED, UNSHARED):
        steered = AttentionPatch(layers, "record")
        generate(lm, settings, [Steering(directions(lm), [0], 8.0), steered], caplog)
        own = AttentionPatch(layers, "record")
        assert generate(lm, settings, [own], caplog) == plain
        assert generate(lm, settings, [AttentionPatch(layers, "patch", own.weights)], caplog) == plain  # round trip
        runs[settings.share_prefix] = generate(lm, settings, [AttentionPatch(layers, "patch", steered.weights)], caplog)
    assert runs[True] == runs[False]
    assert runs[True] != plain


def test_capture_with_interventions_and_a_shared_prefix_equals_whole_prompts(tiny_lm):
    prompts = system_prompts_for(tiny_lm)
    steer = [Steering(directions(tiny_lm), [1], 3.0, position=-2)]
    kwargs = dict(position=-2, batch_size=2, show_progress=False, interventions=steer)
    shared = capture_hidden_states(tiny_lm, prompts, **kwargs)
    unshared = capture_hidden_states(tiny_lm, prompts, share_prefix=False, **kwargs)
    assert ((shared - unshared).norm(dim=-1) / unshared.norm(dim=-1)).max() < 1e-4
    base = capture_hidden_states(tiny_lm, prompts, position=-2, batch_size=2, show_progress=False)
    assert not torch.allclose(shared[:, 1], base[:, 1])  # the steering acted
