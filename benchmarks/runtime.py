"""Generation and hidden-state capture throughput on the embedded model, counting only the work that ran.

Generation (every prompt continued by exactly ``--new-tokens`` tokens: end of turn suppressed, no
newline stop) at each batch size, three ways on the same prompts:
  - ``decode_loop_shared_prefix``: the project's path (the prompts' common prefix runs once per call);
  - ``decode_loop_whole_prompts``: the same loop, every prompt whole;
  - ``transformers_generate``: ``model.generate`` on whole prompts (the previous path, the baseline).
Capture (all layers, last token of short chat prompts) with the shared prefix and with whole prompts.
The default run's own work at the configured ``model.batch_size``: greedy continuations (first line,
up to 128 tokens) and sampled answers (T 0.7, top-p 0.95, up to 24 tokens), new path vs previous path.

FLOPs count the tokens computed (``measure.ModelCost``): the prefix once per call, each row's suffix,
each generated token fed back, and LM-head logits only where computed. Every figure is the median of
``--repeats`` runs (min, max); the variants alternate within each repeat. Writes
data/08_reporting/benchmarks/runtime.json.

    python benchmarks/runtime.py [--batch-sizes 1,8,32,128,256] [--new-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import ROOT, ModelCost, machine, matmul_peak_gflops, summary, timed, write  # noqa: E402
from workloads import continuation_prompts, question_prompts, short_chat_prompts, transformers_generate  # noqa: E402

from retraction_kedro.naming import DEFAULT_CACHE_DIR  # noqa: E402
from retraction_kedro.lm import (  # noqa: E402
    GenerationSettings,
    ModelSpec,
    capture_hidden_states,
    generate_with_counts,
    load_language_model,
)
from retraction_kedro.lm.prefix import prefix_length, suffix_tokens_needed  # noqa: E402

GENERATION_VARIANTS = ("decode_loop_shared_prefix", "decode_loop_whole_prompts", "transformers_generate")


def generate(lm, prompts: list[str], settings: GenerationSettings, variant: str) -> list[tuple[str, int]]:
    if variant == "transformers_generate":
        return transformers_generate(lm, prompts, settings)
    shared = GenerationSettings(**{**settings.__dict__, "share_prefix": variant == "decode_loop_shared_prefix"})
    return generate_with_counts(lm, prompts, shared, show_progress=False)


def shared_prefix(lm, prompts: list[str], share: bool) -> tuple[list[int], int]:
    """Prompt lengths and the prefix a call runs once (as generation and capture decide it)."""
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    return [len(row) for row in ids], prefix_length(lm, ids, suffix_tokens_needed(), share)


def same_texts(pairs: list[tuple[str, int]], reference: list[tuple[str, int]]) -> int:
    return sum(text == other for (text, _), (other, _) in zip(pairs, reference, strict=True))


def figures(seconds: list[float], flops: float, work: float, unit: str) -> dict:
    return {
        f"{unit}_per_s": summary([work / s for s in seconds]),
        "gflops": summary([flops / s / 1e9 for s in seconds]),
        "seconds": summary(seconds),
        "flops": flops,
    }


def run_generation(lm, cost: ModelCost, batch_sizes: list[int], args, sync) -> tuple[list[dict], dict]:
    timings: dict[tuple[int, str], list[float]] = {}
    outputs: dict[tuple[int, str], list[tuple[str, int]]] = {}
    for repeat in range(args.repeats):
        for batch in batch_sizes:
            prompts = continuation_prompts(lm.tokenizer, max(batch, args.min_examples))
            settings = GenerationSettings(
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, stop_at_newline=False, batch_size=batch
            )
            for variant in GENERATION_VARIANTS:
                if repeat == 0:  # warm-up: allocator, thread pool, one-time set-up of each path
                    generate(lm, prompts[: min(batch, 2)], settings, variant)
                outputs[batch, variant], seconds = timed(partial(generate, lm, prompts, settings, variant), sync)
                timings.setdefault((batch, variant), []).append(seconds)
            print(f"generation, repeat {repeat + 1}, batch {batch}: done", flush=True)
    rows = []
    for (batch, variant), seconds in timings.items():
        prompts = continuation_prompts(lm.tokenizer, max(batch, args.min_examples))
        lengths, prefix = shared_prefix(lm, prompts, variant == "decode_loop_shared_prefix")
        counts = [count for _, count in outputs[batch, variant]]
        if set(counts) != {args.new_tokens}:
            raise RuntimeError(
                f"{variant} at batch {batch} generated {sorted(set(counts))} tokens, not {args.new_tokens}"
            )
        same = same_texts(outputs[batch, variant], outputs[batch, "transformers_generate"])
        rows.append({
            "batch_size": batch, "variant": variant, "examples": len(prompts), "new_tokens_per_example": args.new_tokens,
            "prompt_tokens": sum(lengths), "shared_prefix_tokens": prefix, "same_text_as_transformers_generate": same,
            **figures(seconds, cost.generation(lengths, counts, prefix), sum(counts), "tokens"),
        })  # fmt: skip
    return rows, timings


def run_capture(lm, cost: ModelCost, batch_sizes: list[int], args, sync) -> list[dict]:
    prompts = short_chat_prompts(lm.tokenizer, args.capture_examples)
    timings: dict[tuple[int, bool], list[float]] = {}
    states = {}
    for repeat in range(args.repeats):
        for batch in batch_sizes:
            for share in (True, False):
                if repeat == 0:
                    capture_hidden_states(
                        lm, prompts[:batch], batch_size=batch, share_prefix=share, show_progress=False
                    )
                run = partial(
                    capture_hidden_states, lm, prompts, batch_size=batch, share_prefix=share, show_progress=False
                )
                states[share], seconds = timed(run, sync)
                timings.setdefault((batch, share), []).append(seconds)
            print(f"capture, repeat {repeat + 1}, batch {batch}: done", flush=True)
    error = ((states[True] - states[False]).norm(dim=-1) / states[False].norm(dim=-1)).max().item()
    rows = []
    for (batch, share), seconds in timings.items():
        lengths, prefix = shared_prefix(lm, prompts, share)
        rows.append({
            "batch_size": batch, "variant": "shared_prefix" if share else "whole_prompts", "examples": len(prompts),
            "prompt_tokens": sum(lengths), "shared_prefix_tokens": prefix, "max_relative_error_shared_vs_whole": error,
            **figures(seconds, cost.capture(lengths, prefix), len(prompts), "examples"),
        })  # fmt: skip
    return rows


def run_default_work(lm, batch: int, batch_sizes: list[int], args, sync) -> dict:
    """The default run's own generation, examples/s: the new path at ``batch_sizes`` and both paths at ``batch``
    (the configured ``model.batch_size``), so the speedup at the default and the best batch size are both measured."""
    work = {
        "continuations": (  # the activations pipeline: greedy, first line, up to 128 tokens
            continuation_prompts(lm.tokenizer, args.default_examples),
            GenerationSettings(max_new_tokens=128, stop_at_newline=True),
        ),
        "sampled_answers": (  # construction: T 0.7, top-p 0.95, up to 24 tokens, first line
            question_prompts(lm.tokenizer, args.default_examples),
            GenerationSettings(max_new_tokens=24, do_sample=True, temperature=0.7, top_p=0.95, seed=0),
        ),
    }
    runs = [("decode_loop_shared_prefix", size) for size in sorted({*batch_sizes, batch})]
    runs.append(("transformers_generate", batch))
    result = {}
    for name, (prompts, settings) in work.items():
        seconds: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
        outputs = {}
        for _ in range(args.repeats):
            for variant, size in runs:
                sized = GenerationSettings(**{**settings.__dict__, "batch_size": size})
                outputs[variant, size], elapsed = timed(partial(generate, lm, prompts, sized, variant), sync)
                seconds[variant, size].append(elapsed)
        rows = [
            {
                "variant": variant, "batch_size": size, "examples_per_s": summary([len(prompts) / s for s in values]),
                "generated_tokens": sum(count for _, count in outputs[variant, size]),
            }
            for (variant, size), values in seconds.items()
        ]  # fmt: skip
        new = statistics.median(seconds["decode_loop_shared_prefix", batch])
        old = statistics.median(seconds["transformers_generate", batch])
        top = max(
            (r for r in rows if r["variant"] == "decode_loop_shared_prefix"),
            key=lambda r: r["examples_per_s"]["median"],
        )
        result[name] = {
            "examples": len(prompts), "settings": {k: v for k, v in settings.__dict__.items() if k != "batch_size"},
            "default_batch_size": batch, "runs": rows,
            "same_text_at_default_batch": same_texts(
                outputs["decode_loop_shared_prefix", batch], outputs["transformers_generate", batch]
            ),
            "speedup_at_default_batch": old / new, "best_batch_size": top["batch_size"],
            "best_over_transformers_generate_at_default_batch": old * top["examples_per_s"]["median"] / len(prompts),
        }  # fmt: skip
        print(f"default work, {name}: {old / new:.2f}x at batch {batch}; best batch {top['batch_size']}", flush=True)
    return result


def best(rows: list[dict], variant: str, unit: str) -> dict:
    return max((r for r in rows if r["variant"] == variant), key=lambda r: r[f"{unit}_per_s"]["median"])


def at(rows: list[dict], variant: str, batch: int) -> dict:
    return next(r for r in rows if r["variant"] == variant and r["batch_size"] == batch)


def main() -> None:
    params = yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,8,32,128,256")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--min-examples", type=int, default=16, help="generation examples at batch sizes below this")
    parser.add_argument("--capture-examples", type=int, default=256)
    parser.add_argument("--default-examples", type=int, default=256)
    parser.add_argument("--default-batch-sizes", default="32,128,256", help="batch sizes of the new path on that work")
    parser.add_argument("--default-batch-size", type=int, default=params["model"]["batch_size"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="generation,capture,default", help="which parts to run")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    parts = set(args.parts.split(","))

    lm = load_language_model(ModelSpec(cache_dir=str(ROOT / DEFAULT_CACHE_DIR)))
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    cost, peaks = ModelCost.of(lm.model), [matmul_peak_gflops(device=str(lm.device))]
    result = {"model": lm.spec.name, "device": str(lm.device), "dtype": str(lm.model.dtype), "machine": machine()}
    result["model_cost"] = cost.__dict__
    if "generation" in parts:
        result["generation"], _ = run_generation(lm, cost, batch_sizes, args, sync)
        peaks.append(matmul_peak_gflops(device=str(lm.device)))
    if "capture" in parts:
        result["capture"] = run_capture(lm, cost, batch_sizes, args, sync)
    if "default" in parts:
        sizes = [int(b) for b in args.default_batch_sizes.split(",")]
        result["default_work"] = run_default_work(lm, args.default_batch_size, sizes, args, sync)
    peaks.append(matmul_peak_gflops(device=str(lm.device)))
    result["matmul_peak_gflops"] = summary(peaks)
    peak = statistics.median(peaks)
    for row in result.get("generation", []) + result.get("capture", []):  # against this run's median peak
        row["percent_of_peak"] = 100 * row["gflops"]["median"] / peak
    result["summary"] = summarize(result, args)
    print_tables(result)
    write("runtime", result, args.output)


def summarize(result: dict, args) -> dict:
    out = {}
    if "generation" in result:
        rows = result["generation"]
        top = best(rows, "decode_loop_shared_prefix", "tokens")
        one = at(rows, "decode_loop_shared_prefix", 1) if any(r["batch_size"] == 1 for r in rows) else None
        out["generation_best_batch_size"] = top["batch_size"]
        out["generation_best_tokens_per_s"] = top["tokens_per_s"]["median"]
        out["generation_best_percent_of_peak"] = top["percent_of_peak"]
        if one:
            out["generation_best_over_batch_1"] = top["tokens_per_s"]["median"] / one["tokens_per_s"]["median"]
        baseline = best(rows, "transformers_generate", "tokens")
        out["generation_best_over_best_transformers_generate"] = (
            top["tokens_per_s"]["median"] / baseline["tokens_per_s"]["median"]
        )
        out["transformers_generate_best_batch_size"] = baseline["batch_size"]
    if "capture" in result:
        rows = result["capture"]
        top = best(rows, "shared_prefix", "examples")
        out["capture_best_batch_size"] = top["batch_size"]
        if any(r["batch_size"] == 1 for r in rows):
            out["capture_shared_best_over_whole_batch_1"] = (
                top["examples_per_s"]["median"] / at(rows, "whole_prompts", 1)["examples_per_s"]["median"]
            )
        whole = best(rows, "whole_prompts", "examples")
        out["capture_shared_best_over_whole_best"] = top["examples_per_s"]["median"] / whole["examples_per_s"]["median"]
    if "default_work" in result:
        out["default_batch_size"] = args.default_batch_size
        for name, work in result["default_work"].items():
            out[f"default_{name}_speedup_at_default_batch"] = work["speedup_at_default_batch"]
            out[f"default_{name}_best_batch_size"] = work["best_batch_size"]
            out[f"default_{name}_best_over_transformers_generate_at_default_batch"] = work[
                "best_over_transformers_generate_at_default_batch"
            ]
    return out


def print_tables(result: dict) -> None:
    peak = result["matmul_peak_gflops"]
    print(f"matmul peak {peak['median']:.0f} GFLOP/s (min {peak['min']:.0f}, max {peak['max']:.0f})")
    for part, unit in (("generation", "tokens"), ("capture", "examples")):
        if part not in result:
            continue
        print(f"{part}: {unit}/s median (min-max), GFLOP/s, % of peak")
        for row in sorted(result[part], key=lambda r: (r["variant"], r["batch_size"])):
            rate = row[f"{unit}_per_s"]
            spread = f"{rate['median']:>9.1f} ({rate['min']:.1f}-{rate['max']:.1f})"
            gflops = f"{row['gflops']['median']:>8.1f}{row['percent_of_peak']:>7.1f}%"
            print(f"  {row['variant']:28}{row['batch_size']:>5}{spread}{gflops}")
    for key, value in result["summary"].items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
