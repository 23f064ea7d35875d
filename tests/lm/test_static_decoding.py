"""The static-cache path (the GPU's compiled decode step) gives the loop's texts, on every architecture it runs.

On this CPU the step runs uncompiled, and once traced whole by ``torch.compile`` (``aot_eager``,
``fullgraph``): a graph break there is a step that CUDA graphs could not capture on a GPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from retraction_kedro.lm import AttentionPatch, GenerationSettings, LanguageModel, Steering, ValuePatch, generate_with_counts
from retraction_kedro.lm.decoding import StopRule, decode, greedy
from retraction_kedro.lm.generation import decoding_path
from retraction_kedro.lm.prefix import batch_inputs, plan_prefix, suffix_tokens_needed
from retraction_kedro.lm.static_decoding import decode_static

from retraction_kedro.lm.tiny import tiny_model

from .test_architectures import ARCHITECTURES, build_lm, chat_prompts
from .test_generation import many_prompts_for

def _static_cache_has_a_running_length() -> bool:
    from transformers import LlamaConfig, StaticCache

    config = LlamaConfig(num_hidden_layers=1, hidden_size=8, num_attention_heads=2)
    return "cumulative_length" in StaticCache(config=config, max_cache_len=8).layers[0].__dict__


requires_static = pytest.mark.skipif(
    not _static_cache_has_a_running_length(), reason="this transformers' StaticCache predates the static path (< 5.5)"
)
SLIDING = {"mistral", "gemma2", "gemma3", "gpt_oss"}
STATIC = sorted(set(ARCHITECTURES) - SLIDING)
GREEDY = GenerationSettings(max_new_tokens=10, stop_at_newline=True, batch_size=4)
SAMPLED = dataclasses.replace(GREEDY, do_sample=True, temperature=0.9, top_p=0.9, seed=5)


def on(lm: LanguageModel, decoding: str) -> LanguageModel:
    return LanguageModel(lm.model, lm.tokenizer, dataclasses.replace(lm.spec, decoding=decoding))


@pytest.fixture(scope="module", params=STATIC)
def lm(request) -> LanguageModel:
    return build_lm(request.param)


@requires_static
@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_static_path_gives_the_loops_texts_and_counts(lm, settings):
    """Catches a cache transfer that loses the prompt, a mask that shows unwritten positions, padded rows
    leaking into real ones, and stop handling that differs from the loop's."""
    prompts = many_prompts_for(lm)[:9]  # 3 batches, the last one padded to the batch size
    loop = generate_with_counts(on(lm, "loop"), prompts, settings, show_progress=False)
    static = generate_with_counts(on(lm, "static"), prompts, settings, show_progress=False)
    assert static == loop


@requires_static
def test_rows_that_stop_early_end_as_on_the_loop_and_the_others_run_on(lm):
    """Stop tokens drawn from the free continuations at different steps: rows finish at different times,
    and those still running are not disturbed by the finished ones that stay in the static batch."""
    ids = lm.tokenizer(many_prompts_for(lm)[:6], add_special_tokens=False)["input_ids"]
    none = torch.tensor([], dtype=torch.long)
    free = decode(lm.model, batch_inputs(lm, ids, None, use_cache=True), StopRule(none, none, 12), greedy)
    rule = StopRule(torch.tensor(sorted({free[0][2], free[1][6], free[2][9]})), none, 12)
    loop = decode(lm.model, batch_inputs(lm, ids, None, use_cache=True), rule, greedy)
    static = decode_static(lm.model, batch_inputs(lm, ids, None, use_cache=True), rule, greedy, slots=8)
    assert static == loop
    assert len({len(row) for row in loop}) >= 3


@requires_static
def test_static_path_with_prompt_interventions_equals_the_loop(lm):
    """Hooks act on the prompt pass and are off for the steps; recordings and patches match the loop's."""
    prompts = chat_prompts(lm)
    layers = list(range(lm.num_layers))
    steering = Steering(torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(0)), [1], 3.0)
    results = {}
    for decoding in ("loop", "static"):
        model = on(lm, decoding)
        values, weights = ValuePatch(layers, "record"), AttentionPatch(layers, "record")
        steered = generate_with_counts(model, prompts, GREEDY, show_progress=False, interventions=[steering, values, weights])
        patched = generate_with_counts(
            model, prompts, GREEDY, show_progress=False,
            interventions=[ValuePatch(layers, "patch", values.values), AttentionPatch(layers, "patch", weights.weights)],
        )  # fmt: skip
        results[decoding] = (steered, patched, values.values[0])
    assert results["static"][:2] == results["loop"][:2]
    assert torch.allclose(results["static"][2], results["loop"][2], rtol=1e-5, atol=1e-6)


@requires_static
@pytest.mark.parametrize("architecture", ["llama", "phi3", "gpt_neox", "qwen3_moe"])
def test_the_decode_step_compiles_whole(architecture):
    """``fullgraph`` tracing of the step (what CUDA graphs capture on a GPU) gives the uncompiled tokens."""
    lm = build_lm(architecture)
    ids = lm.tokenizer(chat_prompts(lm), add_special_tokens=False)["input_ids"]
    prefix = plan_prefix(lm, ids, suffix_tokens_needed(), True)
    rows = [row[prefix.length :] for row in ids]
    rule = StopRule(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 6, 6)
    loop = decode(lm.model, batch_inputs(lm, rows, prefix, use_cache=True), rule, greedy)
    compiled = decode_static(lm.model, batch_inputs(lm, rows, prefix, use_cache=True), rule, greedy, "aot_eager", slots=4)
    assert compiled == loop


@requires_static
def test_the_path_is_chosen_by_device_model_and_interventions(lm):
    every_token = Steering(torch.zeros(lm.num_layers, lm.hidden_size), [0], 1.0, every_token=True)
    assert not decoding_path(on(lm, "auto")).static  # the CPU keeps the loop
    assert decoding_path(on(lm, "static")).static and decoding_path(on(lm, "compiled")).compile_mode == "inductor"
    with pytest.raises(ValueError, match="an intervention acts on every token"):
        decoding_path(on(lm, "static"), [every_token])


@pytest.mark.parametrize("architecture", sorted(SLIDING))
def test_sliding_window_models_are_refused_on_the_static_path_and_kept_on_the_loop(architecture):
    lm = build_lm(architecture)
    with pytest.raises(ValueError, match="sliding-window layers"):
        decoding_path(on(lm, "compiled"))
    assert not decoding_path(on(lm, "auto")).static


@requires_static
def test_more_compiled_decoders_than_dynamos_default_recompile_limit(monkeypatch):
    """A run on CUDA compiles a decoder per model, batch shape and length bucket: the ninth must not fail."""
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    lm = tiny_model("llama", layers=1)
    ids = lm.tokenizer(chat_prompts(lm)[:2], add_special_tokens=False)["input_ids"]
    rule = StopRule(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 2, 2)
    outputs = [decode_static(lm.model, batch_inputs(lm, ids, None, use_cache=True), rule, greedy, "eager", slots=slots)
               for slots in range(2, 12)]  # fmt: skip
    assert all(output == outputs[0] for output in outputs)


def _failing_compiled_step(monkeypatch):
    """A compiled step that fails as Qwen3-MoE's did on an H200 (its CUDA graph would copy from the host)."""
    from retraction_kedro.lm import static_decoding

    real = static_decoding._decoder

    def decoder(model, rows, length, compile_mode):
        built = real(model, rows, length, None)
        if compile_mode is None:
            return built

        def step(*args):
            raise RuntimeError("Cannot copy between CPU and CUDA tensors during CUDA graph capture")

        return static_decoding._Decoder(built.cache, step)

    monkeypatch.setattr(static_decoding, "_decoder", decoder)


@requires_static
def test_a_compiled_step_that_cannot_run_falls_back_to_the_loop_under_auto(monkeypatch, caplog):
    _failing_compiled_step(monkeypatch)
    lm = tiny_model("llama")
    expected = generate_with_counts(on(lm, "loop"), chat_prompts(lm), GREEDY, show_progress=False)
    lm.device = torch.device("cuda")  # where auto picks the compiled path (the weights stay on the CPU)
    assert decoding_path(lm).compile_mode == "reduce-overhead"
    with caplog.at_level("WARNING"):
        assert generate_with_counts(lm, chat_prompts(lm), GREEDY, show_progress=False) == expected
    assert "the compiled decode step (reduce-overhead) failed: RuntimeError: Cannot copy" in caplog.text
    later = decoding_path(lm)  # the next call goes straight to the loop, saying why
    assert not later.static and "compiled decode step failed earlier" in later.reason
    with pytest.raises(ValueError, match="model.decoding='compiled' cannot run this call: its compiled decode step failed"):
        decoding_path(on(lm, "compiled"))


@requires_static
def test_a_compiled_step_asked_for_explicitly_fails_in_one_line(monkeypatch):
    _failing_compiled_step(monkeypatch)
    lm = on(tiny_model("llama"), "compiled")
    with pytest.raises(ValueError, match=r"^model.decoding='compiled': the compiled decode step \(inductor\) failed"):
        generate_with_counts(lm, chat_prompts(lm), GREEDY, show_progress=False)
