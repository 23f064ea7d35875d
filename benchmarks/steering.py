"""What steering costs: steered vs unsteered generation on the same prompts, forced to equal token counts.

Steering adds alpha * v after a band of layers at the last prompt token (forward hooks on the decoder
layers, prompt pass only), or at every generated token too (``every_token``). Three variants alternate
within each repeat; figures are medians (min, max) of ``--repeats`` runs. Writes
data/08_reporting/benchmarks/steering.json with the throughput ratios to the unsteered run.

    python benchmarks/steering.py [--batch-size 32] [--examples 64] [--new-tokens 64] [--layers 6-14]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import ROOT, machine, summary, timed, write  # noqa: E402
from workloads import continuation_prompts  # noqa: E402

from retraction_kedro.naming import DEFAULT_CACHE_DIR  # noqa: E402
from retraction_kedro.lm import GenerationSettings, ModelSpec, Steering, generate_with_counts, load_language_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--layers", default="6-14", help="band of steered layers, e.g. 6-14 (the paper's Llama band)")
    parser.add_argument("--alpha", type=float, default=1.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    lm = load_language_model(ModelSpec(cache_dir=str(ROOT / DEFAULT_CACHE_DIR)))
    prompts = continuation_prompts(lm.tokenizer, args.examples)
    first, last = (int(x) for x in args.layers.split("-"))
    direction = torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(0))
    direction = direction / direction.norm(dim=1, keepdim=True)
    variants = {
        "unsteered": [],
        "steered_prompt": [Steering(direction, range(first, last + 1), args.alpha)],
        "steered_every_token": [Steering(direction, range(first, last + 1), args.alpha, every_token=True)],
    }
    settings = GenerationSettings(
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        stop_at_newline=False,
        batch_size=args.batch_size,
    )
    generate_with_counts(lm, prompts[: args.batch_size], settings, show_progress=False)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in variants}
    texts = {}
    for repeat in range(args.repeats):  # interleaved, so drift in machine load hits every variant alike
        for name, interventions in variants.items():
            run = partial(generate_with_counts, lm, prompts, settings, show_progress=False, interventions=interventions)
            pairs, seconds = timed(run)
            texts[name] = [text for text, _ in pairs]
            rates[name].append(sum(count for _, count in pairs) / seconds)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {r[-1]:.1f} tok/s" for n, r in rates.items()), flush=True)
    unsteered = statistics.median(rates["unsteered"])
    result = {
        "model": lm.spec.name,
        "device": str(lm.device),
        "batch_size": args.batch_size,
        "examples": len(prompts),
        "new_tokens_per_example": args.new_tokens,
        "layers": [first, last],
        "alpha": args.alpha,
        "tokens_per_s": {name: summary(values) for name, values in rates.items()},
        "over_unsteered": {
            name: statistics.median(values) / unsteered for name, values in rates.items() if name != "unsteered"
        },
        "changed_texts": {
            name: sum(a != b for a, b in zip(texts[name], texts["unsteered"]))
            for name in variants
            if name != "unsteered"
        },
        "machine": machine(),
    }
    for name, values in result["tokens_per_s"].items():
        ratio = f", {result['over_unsteered'][name]:.3f} of unsteered" if name != "unsteered" else ""
        print(f"{name}: {values['median']:.1f} tok/s (min {values['min']:.1f}, max {values['max']:.1f}){ratio}")
    write("steering", result, args.output)


if __name__ == "__main__":
    main()
