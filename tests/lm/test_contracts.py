"""The run-time checks of library contracts that break silently: each one raises where the library changed."""

from __future__ import annotations

import tomllib

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import DynamicCache

from retraction_kedro.lm import GenerationSettings, Steering, capture_hidden_states, generate_texts
from retraction_kedro.lm import contracts
from retraction_kedro.lm.contracts import (
    SUPPORTED_TRANSFORMERS,
    LibraryContractError,
    UnsupportedVersionError,
    cache_keyword,
    check_transformers_version,
    ensure_exact_attention,
)
from tests.conftest import PROJECT_ROOT

from .test_generation import prompts_for

GREEDY = GenerationSettings(max_new_tokens=4, stop_at_newline=False, batch_size=4)


def test_the_cache_keyword_is_the_installed_models_own(tiny_lm):
    """5.24 renamed it; whichever is installed, the name handed over is the one its forward declares, and the
    model really keeps what it is given under that name."""
    name = cache_keyword(tiny_lm.model)
    assert name == ("cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values")
    cache = DynamicCache(config=tiny_lm.model.config)
    ids = tiny_lm.tokenizer("Berlin is", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tiny_lm.model(input_ids=ids, **{name: cache, "use_cache": True})
    assert cache.get_seq_length() == ids.shape[1]


def test_a_forward_that_ignores_its_cache_raises_instead_of_decoding_without_history(tiny_lm, monkeypatch):
    """A model under a transformers that does not know the keyword takes it into **kwargs: simulated by a name
    no version knows. Prefix sharing (capture, generation) and the decode loop each refuse."""
    monkeypatch.setattr(contracts, "_named_cache_keyword", lambda module_type: "kv_cache_of_another_version")
    with pytest.raises(LibraryContractError, match="did not use the cache it was given"):
        generate_texts(tiny_lm, prompts_for(tiny_lm), GREEDY, show_progress=False)
    with pytest.raises(LibraryContractError, match="the shared prefix pass"):
        capture_hidden_states(tiny_lm, prompts_for(tiny_lm), show_progress=False)
    with pytest.raises(LibraryContractError, match="decoding: the prompt pass"):
        generate_texts(tiny_lm, prompts_for(tiny_lm)[:1], GREEDY, show_progress=False)  # one prompt: no prefix


def test_a_model_that_takes_no_cache_is_refused():
    class NoCache(torch.nn.Module):
        def forward(self, input_ids):
            return input_ids

    with pytest.raises(LibraryContractError, match="NoCache.forward takes none of"):
        cache_keyword(NoCache())


def test_an_intervention_whose_hooks_never_run_raises(tiny_lm, monkeypatch):
    """A hook on a module the model no longer calls would leave every run unsteered, with no error."""
    stray = torch.nn.Linear(2, 2)
    steering = Steering(torch.ones(tiny_lm.num_layers, tiny_lm.hidden_size), [1], 1.0)
    monkeypatch.setattr(steering, "hooks", lambda model: [(1, stray, steering._hook(1))])
    with pytest.raises(LibraryContractError, match=r"Steering: the hooks of layer\(s\) \[1\] never ran"):
        generate_texts(tiny_lm, prompts_for(tiny_lm), GREEDY, show_progress=False, interventions=[steering])
    with pytest.raises(LibraryContractError, match="never ran"):
        capture_hidden_states(tiny_lm, prompts_for(tiny_lm), show_progress=False, interventions=[steering])


def test_capture_does_not_expect_hooks_above_the_last_captured_layer(tiny_lm):
    """Capture stops after the last layer it keeps: steering above it cannot act and is not an error."""
    steering = Steering(torch.ones(tiny_lm.num_layers, tiny_lm.hidden_size), [2], 1.0)
    plain = capture_hidden_states(tiny_lm, prompts_for(tiny_lm), layers=[0, 1], show_progress=False)
    steered = capture_hidden_states(tiny_lm, prompts_for(tiny_lm), layers=[0, 1], show_progress=False, interventions=[steering])
    assert torch.equal(plain, steered)


def _gemma2_on_sdpa():
    """Gemma2 as transformers < 5.21 built it by default (later versions refuse SDPA for it: set directly)."""
    config = transformers.Gemma2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, attn_logit_softcapping=4.0,
    )  # fmt: skip
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.config._attn_implementation = "sdpa"
    return model


def test_a_soft_capped_model_runs_eager_attention_and_sdpa_asked_for_is_refused():
    """transformers < 5.21 put Gemma2 on SDPA, which has no soft-capping: it ran without it, silently."""
    model = _gemma2_on_sdpa()
    ensure_exact_attention(model)
    assert model.config._attn_implementation == "eager"
    with pytest.raises(LibraryContractError, match="soft-caps its attention logits"):
        ensure_exact_attention(_gemma2_on_sdpa(), requested="sdpa")


def test_the_supported_range_is_the_one_pyproject_declares_and_others_are_refused_in_one_line():
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"transformers{SUPPORTED_TRANSFORMERS}" in declared
    check_transformers_version(transformers.__version__)
    for version in ("4.57.1", "5.1.0", "6.0.0"):
        with pytest.raises(UnsupportedVersionError) as error:
            check_transformers_version(version)
        assert str(error.value).count("\n") == 0 and version in str(error.value)


def test_ci_tests_the_floor_the_project_declares():
    """`make test-floor` installs the oldest transformers of the supported range: the two cannot drift apart."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    floor = next(line.split("?=")[1].strip() for line in makefile.splitlines() if line.startswith("TRANSFORMERS_FLOOR"))
    lowest = SUPPORTED_TRANSFORMERS.split(",")[0].removeprefix(">=")
    assert Version(floor) == Version(lowest)
    assert "make test-floor" in (PROJECT_ROOT / ".ci/run").read_text()
