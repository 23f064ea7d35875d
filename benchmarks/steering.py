"""Steered vs unsteered batched generation on the same prompts, forced to equal token counts.

Steering adds alpha * v at the last prompt token after a band of layers (forward hooks on
the decoder layers, prompt pass only). Writes data/08_reporting/benchmarks/steering.json
with ``steered_over_unsteered`` (throughput ratio; the best published engine keeps 0.76).

    python benchmarks/steering.py [--batch-size 32] [--examples 32] [--new-tokens 64] [--every-token]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runtime import benchmark_prompts  # noqa: E402

from retraction_kedro.lm import GenerationSettings, ModelSpec, Steering, generate_with_counts, load_language_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--layers", default="6-14", help="band of steered layers, e.g. 6-14 (the paper's Llama band)")
    parser.add_argument("--alpha", type=float, default=1.2)
    parser.add_argument("--every-token", action="store_true", help="steer every generated token too")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "data/08_reporting/benchmarks/steering.json"))
    args = parser.parse_args()

    lm = load_language_model(ModelSpec(cache_dir=str(ROOT / "data/06_models")))
    prompts = benchmark_prompts(lm.tokenizer, args.examples)
    first, last = (int(x) for x in args.layers.split("-"))
    direction = torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(0))
    steering = Steering(direction / direction.norm(dim=1, keepdim=True), range(first, last + 1), args.alpha, args.every_token)
    settings = GenerationSettings(
        max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, stop_at_newline=False, batch_size=args.batch_size
    )
    generate_with_counts(lm, prompts[: args.batch_size], settings, show_progress=False)  # warm-up
    timings = {"unsteered": [], "steered": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both sides alike
        for label, interventions in (("unsteered", []), ("steered", [steering])):
            start = time.perf_counter()
            pairs = generate_with_counts(lm, prompts, settings, show_progress=False, interventions=interventions)
            timings[label].append(sum(c for _, c in pairs) / (time.perf_counter() - start))
    best = {label: max(values) for label, values in timings.items()}
    result = {
        "model": lm.spec.name,
        "device": str(lm.device),
        "batch_size": args.batch_size,
        "examples": len(prompts),
        "new_tokens_per_example": args.new_tokens,
        "layers": [first, last],
        "alpha": args.alpha,
        "every_token": args.every_token,
        "unsteered_tokens_per_s": best["unsteered"],
        "steered_tokens_per_s": best["steered"],
        "steered_over_unsteered": best["steered"] / best["unsteered"],
        "runs_tokens_per_s": timings,
    }
    print(
        f"unsteered {best['unsteered']:.1f} tok/s, steered {best['steered']:.1f} tok/s "
        f"(layers {first}-{last}, every_token={args.every_token}): ratio {result['steered_over_unsteered']:.3f}"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
