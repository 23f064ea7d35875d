"""Every mechanism of ``retraction_kedro.lm`` on tiny random models of the architectures researchers use
(``retraction_kedro.lm.tiny``: what each config turns on).

Hidden states and logits are compared by relative error: float noise is ~1e-6 here and every
tolerance is 1e-4, while the breakages each check names move the compared numbers by 1e-2 or more
(``test_the_configs_make_each_attention_feature_matter`` shows it for sinks, soft-capping and windows).
"""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.models.llama.modeling_llama import eager_attention_forward as llama_eager_attention

from retraction_kedro.lm import (
    AttentionPatch,
    GenerationSettings,
    LanguageModel,
    ModelSpec,
    Steering,
    ValuePatch,
    answer_messages,
    capture_hidden_states,
    continuation_prompt,
    generate_texts,
)
from retraction_kedro.lm import attention as attention_functions
from retraction_kedro.lm.contracts import ensure_exact_attention, with_cache
from retraction_kedro.lm.architecture import attention_module, decoder_layers, decoder_stack, input_device, value_output
from retraction_kedro.lm.interventions import attached
from retraction_kedro.lm.tiny import ARCHITECTURES, tiny_model, tiny_tokenizer
from retraction_kedro.lm.tiny import chat_prompts as tiny_chat_prompts


GREEDY = GenerationSettings(max_new_tokens=8, stop_at_newline=False, batch_size=3)
TOLERANCE = 1e-4


def build_lm(architecture: str) -> LanguageModel:
    return tiny_model(architecture)


def chat_prompts(lm: LanguageModel) -> list[str]:
    return tiny_chat_prompts(lm)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Matrices this small gain nothing from a second thread, and on a busy machine its barriers cost ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def lm(request) -> LanguageModel:
    return build_lm(request.param)


@pytest.fixture(scope="module")
def plain(lm) -> list[str]:
    """The batched greedy run without interventions, which the round trips must reproduce."""
    return generate_texts(lm, chat_prompts(lm), GREEDY, show_progress=False)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()


def directions(lm: LanguageModel, seed: int = 0) -> torch.Tensor:
    return torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(seed))


def single_forward(lm: LanguageModel, prompt: str, **kwargs):
    ids = lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(input_device(lm.model))
    with torch.no_grad():
        return lm.model(input_ids=ids, **kwargs)


def padded_logits(lm: LanguageModel, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a left-padded batch, and which positions are real tokens."""
    encoded = lm.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        return lm.model(**encoded).logits, encoded["attention_mask"].bool()


def registered_logits(lm: LanguageModel, prompts: list[str]) -> torch.Tensor:
    """:func:`padded_logits` through the registered attention (an attention recording switches to it)."""
    recorder = AttentionPatch(range(lm.num_layers), "record")
    with attached(lm, [recorder]):
        recorder.start_batch(range(len(prompts)))
        return padded_logits(lm, prompts)[0]


def cache_after(lm: LanguageModel, prompt: str, interventions=()) -> DynamicCache:
    """transformers' own KV cache after a forward of ``prompt`` (one row) with ``interventions`` attached."""
    cache = DynamicCache(config=lm.model.config)
    with attached(lm, interventions):
        for intervention in interventions:
            intervention.start_batch([0])
        single_forward(lm, prompt, **with_cache(lm.model, cache))
    return cache


def test_the_stack_helpers_find_every_part(lm):
    layers = decoder_layers(lm.model)
    stack = decoder_stack(lm.model)
    assert len(layers) == lm.num_layers and stack is not lm.model  # the stack leaves out the LM head
    assert all(layer in list(stack.modules()) for layer in layers)
    assert input_device(lm.model) == torch.device("cpu")
    for index, layer in enumerate(layers):
        assert value_output(lm.model, index).projection in list(attention_module(layer).modules())


def test_capture_equals_the_models_own_hidden_states(lm):
    """Catches the wrong stack or layers, padding or position-id bugs, a shared prefix or mask losing the window."""
    prompts = chat_prompts(lm)
    captured = capture_hidden_states(lm, prompts, position=-2, batch_size=3, show_progress=False)
    for row, prompt in enumerate(prompts):
        reference = single_forward(lm, prompt, output_hidden_states=True).hidden_states
        for layer in range(lm.num_layers - 1):  # hidden_states[i + 1] is layer i's output (the last one is normed)
            assert relative_error(captured[row, layer], reference[layer + 1][0, -2]) < TOLERANCE


def test_batched_greedy_equals_per_example(lm, plain):
    """Catches padding, position, prefix-sharing and sliding-window cache bugs of batched decoding."""
    single = [generate_texts(lm, [prompt], GREEDY, show_progress=False)[0] for prompt in chat_prompts(lm)]
    assert plain == single
    assert len(set(plain)) > 1  # the prompts really lead to different continuations


def test_batched_greedy_equals_transformers_generate_on_the_same_padded_batch(lm, plain):
    """The oracle: transformers' own ``generate`` on the tokenizer's left-padded batch of whole prompts.

    Catches a KV cache the model ignored (a renamed keyword: each step then runs without its history),
    a shared prefix that never reached the batch, and position or mask errors that one-at-a-time runs share.
    """
    encoded = lm.tokenizer(chat_prompts(lm), add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = lm.model.generate(
            **encoded, do_sample=False, max_new_tokens=GREEDY.max_new_tokens, pad_token_id=lm.tokenizer.pad_token_id
        )
    reference = lm.tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert plain == reference


def test_steering_acts_on_each_layers_output(lm, plain):
    """Alpha 0 is the identity; alpha 2 moves exactly the steered layer's state by 2v (a hook on a copy does not)."""
    prompts, v = chat_prompts(lm), directions(lm)
    assert (
        generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[Steering(v, range(lm.num_layers), 0.0)])
        == plain
    )
    base = capture_hidden_states(lm, prompts, show_progress=False)
    steered = capture_hidden_states(lm, prompts, show_progress=False, interventions=[Steering(v, [1], 2.0)])
    assert relative_error(steered[:, 0], base[:, 0]) < TOLERANCE
    assert relative_error(steered[:, 1] - base[:, 1], (2.0 * v[1]).expand(len(prompts), -1)) < TOLERANCE


def test_value_patch_reads_and_writes_the_values_attention_uses(lm):
    """Recorded vectors are the values in transformers' own KV cache, and patched vectors land there.

    Catches a mis-sliced fused projection (keys or queries taken for values, GPT-NeoX's per-head
    layout read as Phi-3's blocks), which a record/patch round trip cannot see.
    """
    prompt, layers = chat_prompts(lm)[0], list(range(lm.num_layers))
    recorder = ValuePatch(layers, "record")
    capture_hidden_states(lm, [prompt], show_progress=False, interventions=[recorder])
    plain = cache_after(lm, prompt)
    for layer in layers:  # the cache holds [batch, kv heads, keys, head dim]; recordings are head by head
        assert relative_error(recorder.values[layer][0], plain.layers[layer].values[0, :, -1].flatten()) < TOLERANCE
    noise = torch.Generator().manual_seed(0)
    moved = {layer: values + torch.randn(values.shape, generator=noise) for layer, values in recorder.values.items()}
    patched = cache_after(lm, prompt, [ValuePatch([0], "patch", moved)])
    assert relative_error(patched.layers[0].values[0, :, -1].flatten(), moved[0][0]) < TOLERANCE
    assert torch.equal(patched.layers[0].values[0, :, :-1], plain.layers[0].values[0, :, :-1])  # only that position


def test_value_patch_round_trip_reproduces_the_run(lm, plain):
    prompts, layers = chat_prompts(lm), list(range(lm.num_layers))
    recorder = ValuePatch(layers, "record")
    assert generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[recorder]) == plain
    assert recorder.values[0].shape[0] == len(prompts)
    assert (
        generate_texts(
            lm, prompts, GREEDY, show_progress=False, interventions=[ValuePatch(layers, "patch", recorder.values)]
        )
        == plain
    )


def test_registered_attention_equals_the_models_default_attention(lm):
    """Left-padded logits through the registered attention equal those of the model's default attention
    (sdpa; eager where sdpa lacks a feature: Gemma2, gpt-oss), and the default comes back afterwards.

    Catches an attention that drops sinks, soft-capping, the scaling or the window, or expands GQA wrongly.
    """
    prompts = chat_prompts(lm)
    default = lm.model.config._attn_implementation
    reference, real = padded_logits(lm, prompts)
    assert relative_error(registered_logits(lm, prompts)[real], reference[real]) < TOLERANCE
    assert lm.model.config._attn_implementation == default


def test_attention_patch_round_trip_reproduces_the_run(lm, plain):
    prompts, layers = chat_prompts(lm), list(range(lm.num_layers))
    recorder = AttentionPatch(layers, "record")
    assert generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[recorder]) == plain
    patch = AttentionPatch(layers, "patch", recorder.weights)
    assert generate_texts(lm, prompts, GREEDY, show_progress=False, interventions=[patch]) == plain


def test_patched_attention_output_is_the_patched_weights_times_the_values(lm):
    """Catches a wrong GQA expansion, head or position in the patch, or a patch that never reaches the output."""
    prompt, layer = chat_prompts(lm)[0], 1
    config = lm.model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    keys = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    weights = torch.randn(heads, keys, generator=torch.Generator().manual_seed(1)).softmax(
        -1
    )  # a different mix per head
    seen: dict[str, torch.Tensor] = {}
    target = value_output(lm.model, layer)
    attention = attention_module(decoder_layers(lm.model)[layer])
    output_projection = next(module for name, module in attention.named_children() if name in ("o_proj", "dense"))
    hooks = [  # they only look: each returns None
        target.projection.register_forward_hook(lambda m, a, out: seen.update(values=out[0, :, target.features])),
        output_projection.register_forward_pre_hook(lambda m, args: seen.update(mixed=args[0][0, -1])),
    ]
    try:
        cache_after(lm, prompt, [AttentionPatch([layer], "patch", {layer: {0: weights}})])
    finally:
        for hook in hooks:
            hook.remove()
    values = seen["values"].reshape(keys, kv_heads, -1)  # [keys, kv heads, head dim]
    expected = torch.stack([weights[head] @ values[:, head * kv_heads // heads] for head in range(heads)])
    assert relative_error(seen["mixed"], expected.flatten()) < TOLERANCE


def _mask_without_window(eager_mask):
    def mask(*args, mask_function=None, **kwargs):
        return eager_mask(*args, **kwargs)  # the default mask function: plain causal

    return mask


@pytest.mark.parametrize(
    "architecture, dropped",
    [
        ("gpt_oss", "sinks"),
        ("gemma2", "soft-capping"),
        ("mistral", "window"),
        ("gemma3", "window"),
        ("gpt_oss", "window"),
    ],
)
def test_the_configs_make_each_attention_feature_matter(architecture, dropped, monkeypatch):
    """An attention that drops the feature (Llama's eager for sinks and soft-capping; a plain causal
    mask for windows) moves the logits 100x past the tolerance of the equality check above."""
    lm = build_lm(architecture)
    prompts = chat_prompts(lm)
    reference, real = padded_logits(lm, prompts)
    if dropped == "window":
        monkeypatch.setattr(
            transformers.masking_utils, "eager_mask", _mask_without_window(transformers.masking_utils.eager_mask)
        )
    else:
        monkeypatch.setattr(attention_functions, "own_eager_attention", lambda module: llama_eager_attention)
    assert relative_error(registered_logits(lm, prompts)[real], reference[real]) > 100 * TOLERANCE


def test_attention_that_is_not_weights_times_values_is_refused(monkeypatch):
    lm = build_lm("llama")
    prompt = chat_prompts(lm)[0]
    recorder = AttentionPatch([0], "record")
    capture_hidden_states(lm, [prompt], show_progress=False, interventions=[recorder])

    def gated(module, *args, **kwargs):  # an attention whose output is more than its weights times its values
        output, weights = llama_eager_attention(module, *args, **kwargs)
        return 2 * output, weights

    monkeypatch.setattr(attention_functions, "own_eager_attention", lambda module: gated)
    with pytest.raises(
        NotImplementedError, match="LlamaAttention: the attention output is not its weights times its values"
    ):
        capture_hidden_states(
            lm, [prompt], show_progress=False, interventions=[AttentionPatch([0], "patch", recorder.weights)]
        )


def test_a_model_without_attention_is_refused_in_one_line():
    tokenizer = tiny_tokenizer()
    config = transformers.MambaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, state_size=4)
    lm = LanguageModel(
        model=AutoModelForCausalLM.from_config(config), tokenizer=tokenizer, spec=ModelSpec(name="tiny-mamba")
    )
    steering = Steering(torch.zeros(2, 32), [0], 1.0)
    refusal = "MambaForCausalLM layer 1: MambaBlock has no attention module"
    with pytest.raises(NotImplementedError, match=refusal), attached(lm, [steering, AttentionPatch([1], "record")]):
        pass
    assert not steering._handles  # what attached before the refusal is detached again
    with (
        pytest.raises(TypeError, match="MambaBlock has no attention module"),
        attached(lm, [ValuePatch([0], "record")]),
    ):
        pass
