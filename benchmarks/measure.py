"""What every benchmark shares: repeated timings summarized, the machine's matmul peak, FLOPs of the work that ran.

Timings vary with the machine and with other jobs on it: each figure is the median of several runs
(with min and max), the variants of a comparison alternate within each repeat, and the matmul peak
is measured in the same run (start, middle, end) so that "% of peak" compares like with like.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "data/08_reporting/benchmarks"


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def timed(fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> tuple[Any, float]:
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return result, time.perf_counter() - start


def matmul_peak_gflops(size: int = 1024, seconds: float = 2.0, device: str = "cpu") -> float:
    """float32 GFLOP/s of repeated square matmuls: the machine's practical peak for dense layers."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def machine() -> dict[str, Any]:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def write(name: str, result: dict[str, Any], output: str | None = None) -> Path:
    path = Path(output) if output else OUTPUT_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {**result, "load_average_at_end": os.getloadavg()}
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path


@dataclass(frozen=True)
class ModelCost:
    """FLOPs of the tokens a decoder-only model actually computes.

    A token at position ``p`` (0-based) costs ``2 * body`` in the decoder layers' matrices plus
    ``4 * layers * query_width * (p + 1)`` in attention (scores and weighted values over ``p + 1``
    keys); a row of logits costs ``2 * head``. Padding is not counted: it is work, but not useful work.
    """

    body: int  # weights of the decoder layers' matrices
    head: int  # weights of the LM head
    layers: int
    query_width: int  # query heads x head size

    @classmethod
    def of(cls, model: Any, layers: int | None = None) -> ModelCost:
        from retraction_kedro.lm.architecture import decoder_layers

        stack = decoder_layers(model)
        used = list(stack)[: layers or len(stack)]
        config = model.config.get_text_config()
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(
            body=sum(p.numel() for layer in used for p in layer.parameters() if p.dim() == 2),
            head=model.get_output_embeddings().weight.numel(),
            layers=len(used),
            query_width=config.num_attention_heads * head_dim,
        )

    def tokens(self, start: int, end: int) -> float:
        """Tokens at positions ``start .. end - 1`` of one sequence."""
        contexts = (end * (end + 1) - start * (start + 1)) // 2
        return 2 * self.body * (end - start) + 4 * self.layers * self.query_width * contexts

    def logits(self, rows: int) -> float:
        return 2 * self.head * rows

    def generation(self, prompt_lengths: list[int], new_tokens: list[int], prefix: int) -> float:
        """One call: the prefix once, each row's suffix, its generated tokens fed back (not the last), its logits."""
        total = self.tokens(0, prefix)
        for length, new in zip(prompt_lengths, new_tokens):
            total += self.tokens(prefix, length) + self.tokens(length, length + new - 1) + self.logits(new)
        return total

    def capture(self, prompt_lengths: list[int], prefix: int) -> float:
        return self.tokens(0, prefix) + sum(self.tokens(prefix, length) for length in prompt_lengths)
