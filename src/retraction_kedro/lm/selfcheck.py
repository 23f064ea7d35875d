"""Oracle checks of the model mechanics on any device and dtype: what ``retraction_kedro.doctor`` runs.

Each check compares the project's batched, prefix-sharing machinery with an independent reference
computed by transformers itself, on the model given (tiny random models by default):

- ``generation``: the decode loop's logits at every step against the model's own forward of the whole
  generated sequence, one row at a time (teacher-forced: exact comparisons survive bfloat16 noise);
- ``static``: the same for the static-cache path, uncompiled; ``compiled``: its compiled step (the path
  generation takes on CUDA), where a ``compile_mode`` is given;
- ``generate``: batched greedy texts against transformers' ``generate`` on the same padded batch and
  against one prompt at a time (float32 only: in bfloat16 greedy texts may legitimately part);
- ``capture``: hidden states captured with the shared prefix against ``output_hidden_states``, row by row;
- ``attention``: the registered eager attention (patching) against the model's default attention;
- ``steering``: adding ``alpha * v`` moves exactly the steered layer's output by ``alpha * v``.

Errors are relative (|difference| / |reference|, the maximum over rows, layers or steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .architecture import attention_module, decoder_layers, input_device, layer_hidden
from .capture import capture_hidden_states
from .decoding import StopRule, decode
from .generation import GenerationSettings, generate_texts
from .interventions import AttentionPatch, Steering, attached
from .loading import LanguageModel
from .prefix import batch_inputs, plan_prefix, suffix_tokens_needed
from .static_decoding import CompiledStepError, decode_static, static_cache_supported

TOLERANCES = {torch.float32: 1e-4, torch.bfloat16: 1e-1, torch.float16: 2e-2}  # bfloat16 keeps 8 bits of mantissa: ~4e-2 seen
STEPS = 8


@dataclass(frozen=True)
class CheckResult:
    model: str
    check: str
    error: float | None  # None: the check compares exactly (texts)
    tolerance: float | None
    passed: bool
    detail: str
    seconds: float
    skipped: bool = False

    def line(self) -> str:
        status = "skip" if self.skipped else "ok" if self.passed else "FAIL"
        figure = f"error {self.error:.1e} (tolerance {self.tolerance:.0e})" if self.error is not None else ""
        return f"{status:<5}{self.model:<12}{self.check:<11}{figure:<36}{self.detail} [{self.seconds:.1f} s]"


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm(dim=-1) / b.norm(dim=-1).clamp(min=1e-12)).max().item()


def _teacher_forced_error(lm: LanguageModel, prompts: list[str], run: Callable) -> tuple[float, int]:
    """Max relative error of the logits a decoder saw at each step against the model's own forward of the
    prompt and the tokens generated so far (one row at a time, no cache, no padding)."""
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    seen: list[torch.Tensor] = []

    def choose(logits: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        seen.append(logits.detach().float().cpu())  # every row runs every step, in input order: [rows, vocab]
        return logits.argmax(-1)

    none = torch.tensor([], dtype=torch.long)
    tokens = run(ids, StopRule(none, none, STEPS, STEPS), choose)  # every row runs every step: no stops
    error = 0.0
    device = input_device(lm.model)
    with torch.inference_mode():
        for row, (prompt, generated) in enumerate(zip(ids, tokens)):
            sequence = torch.tensor([prompt + generated[:-1]], device=device)
            reference = lm.model(input_ids=sequence).logits[0, len(prompt) - 1 :].float().cpu()
            error = max(error, _relative(torch.stack([step[row] for step in seen]), reference))
    return error, len(ids)


def _prefix_batch(lm: LanguageModel, ids: list[list[int]]):
    prefix = plan_prefix(lm, ids, suffix_tokens_needed(), True)
    rows = [row[prefix.length if prefix else 0 :] for row in ids]
    return batch_inputs(lm, rows, prefix, use_cache=True), prefix


def check_generation(lm: LanguageModel, prompts: list[str], tolerance: float) -> tuple[float, str]:
    def run(ids, rule, choose):
        batch, prefix = _prefix_batch(lm, ids)
        return decode(lm.model, batch, rule, choose)

    error, rows = _teacher_forced_error(lm, prompts, run)
    return error, f"decode loop on a shared prefix, {rows} rows x {STEPS} steps vs the model's own forward"


def check_static(lm: LanguageModel, prompts: list[str], tolerance: float, compile_mode: str | None) -> tuple[float, str]:
    def run(ids, rule, choose):
        batch, prefix = _prefix_batch(lm, ids)
        return decode_static(lm.model, batch, rule, choose, compile_mode, slots=len(ids) + 1)

    error, rows = _teacher_forced_error(lm, prompts, run)
    how = f"compiled ({compile_mode})" if compile_mode else "uncompiled"
    return error, f"static-cache step {how}, {rows} rows (+1 padding) x {STEPS} steps vs the model's own forward"


def check_generate(lm: LanguageModel, prompts: list[str]) -> tuple[bool, str]:
    settings = GenerationSettings(max_new_tokens=STEPS, stop_at_newline=False, batch_size=len(prompts))
    batched = generate_texts(lm, prompts, settings, show_progress=False)
    single = [generate_texts(lm, [prompt], settings, show_progress=False)[0] for prompt in prompts]
    encoded = lm.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(input_device(lm.model))
    with torch.inference_mode():
        output = lm.model.generate(**encoded, do_sample=False, max_new_tokens=STEPS, pad_token_id=lm.tokenizer.pad_token_id)
    reference = lm.tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    differ = [i for i, (a, b, c) in enumerate(zip(batched, single, reference)) if not a == b == c]
    detail = f"batched greedy texts = transformers' generate on the padded batch = one at a time ({len(prompts)} prompts)"
    return not differ, detail if not differ else f"rows {differ} differ: {detail}"


def check_capture(lm: LanguageModel, prompts: list[str], tolerance: float) -> tuple[float, str]:
    captured = capture_hidden_states(lm, prompts, position=-2, batch_size=len(prompts), show_progress=False)
    error = 0.0
    device = input_device(lm.model)
    with torch.inference_mode():
        for row, prompt in enumerate(prompts):
            ids = lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
            reference = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
            for layer in range(lm.num_layers - 1):  # hidden_states[i + 1] is layer i's output (the last one is normed)
                error = max(error, _relative(captured[row, layer], reference[layer + 1][0, -2].cpu()))
    return error, f"shared-prefix batched capture vs output_hidden_states, {len(prompts)} rows x {lm.num_layers - 1} layers"


def check_attention(lm: LanguageModel, prompts: list[str], tolerance: float) -> tuple[float, str]:
    """The first layer's attention output (the same inputs in both runs) and, in float32, the logits.

    In bfloat16 the logits are no oracle for models that route: kernel-level noise flips a token's expert
    choice and moves its logits by far more than the noise (Qwen3-MoE: 0.3 on an H200).
    """
    encoded = lm.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(input_device(lm.model))
    real = encoded["attention_mask"].bool()
    default = lm.model.config._attn_implementation
    first = attention_module(decoder_layers(lm.model)[0])
    outputs: list[torch.Tensor] = []
    handle = first.register_forward_hook(lambda module, args, output: outputs.append(layer_hidden(output).detach()))
    try:
        with torch.inference_mode():
            reference = lm.model(**encoded).logits
            recorder = AttentionPatch(range(lm.num_layers), "record")
            with attached(lm, [recorder]):
                recorder.start_batch(range(len(prompts)))
                registered = lm.model(**encoded).logits
    finally:
        handle.remove()
    if lm.model.config._attn_implementation != default:
        return float("inf"), f"the attention implementation did not come back to {default!r}"
    error = _relative(outputs[1][real], outputs[0][real])
    if lm.model.dtype == torch.float32:
        error = max(error, _relative(registered[real], reference[real]))
        return error, f"registered eager attention vs the default ({default}): layer 0's output and the logits, padded batch"
    return error, f"registered eager attention vs the default ({default}): layer 0's output, padded batch"


def check_steering(lm: LanguageModel, prompts: list[str], tolerance: float) -> tuple[float, str]:
    v = torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(0))
    base = capture_hidden_states(lm, prompts, show_progress=False)
    steered = capture_hidden_states(lm, prompts, show_progress=False, interventions=[Steering(v, [1], 2.0)])
    moved = steered[:, 1] - base[:, 1]
    error = max(_relative(moved, (2.0 * v[1]).expand(len(prompts), -1)), _relative(steered[:, 0], base[:, 0]))
    return error, "alpha 2 along v moves layer 1's output by 2v and leaves layer 0's alone"


def run_checks(
    lm: LanguageModel, prompts: list[str], name: str, compile_mode: str | None = None
) -> list[CheckResult]:
    """Every check on ``lm``; the static path where it can run, and its step compiled when ``compile_mode`` is given."""
    dtype = lm.model.dtype
    tolerance = TOLERANCES[dtype]
    numeric: list[tuple[str, Callable[[], tuple[float, str]]]] = [
        ("generation", lambda: check_generation(lm, prompts, tolerance)),
        ("capture", lambda: check_capture(lm, prompts, tolerance)),
        ("attention", lambda: check_attention(lm, prompts, tolerance)),
        ("steering", lambda: check_steering(lm, prompts, tolerance)),
    ]
    unsupported = static_cache_supported(lm.model)
    if unsupported is None:
        numeric.insert(1, ("static", lambda: check_static(lm, prompts, tolerance, None)))
        if compile_mode is not None:
            numeric.insert(2, ("compiled", lambda: check_static(lm, prompts, tolerance, compile_mode)))
    results = []
    for check, run in numeric:
        start = time.perf_counter()
        try:
            error, detail = run()
            passed = error <= tolerance
        except CompiledStepError as failure:  # generation falls back to the loop for this model: not wrong, slower
            results.append(CheckResult(name, check, None, None, True, f"not run: {failure}; generation falls back to the loop",
                                       time.perf_counter() - start, skipped=True))  # fmt: skip
            continue
        except Exception as failure:  # a check that cannot run is a failed check, named
            error, detail, passed = None, f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}", False
        results.append(CheckResult(name, check, error, tolerance, passed, detail, time.perf_counter() - start))
    if unsupported is not None:
        results.append(CheckResult(name, "static", None, None, True, f"not run: {unsupported} (the loop runs it)", 0.0, skipped=True))
    start = time.perf_counter()
    if dtype == torch.float32:
        try:
            passed, detail = check_generate(lm, prompts)
        except Exception as failure:
            passed, detail = False, f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
        results.append(CheckResult(name, "generate", None, None, passed, detail, time.perf_counter() - start))
    return results
