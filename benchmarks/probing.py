"""Batched probe training vs the paper's per-layer loop, on the same truthfulness activations.

The paper trains each layer's probe in its own run: a DataLoader over that layer's
features, an ``nn.Linear(hidden, 1, bias=False)`` and AdamW, epoch by epoch. Both sides
here use the same schedule, standardization, split and epoch selection. Needs the
embedded study's activations (`kedro run --pipelines activations`); writes
data/08_reporting/benchmarks/probing.json with ``speedup`` and ``max_accuracy_gap``.

    python benchmarks/probing.py [--model HuggingFaceTB/SmolLM2-135M-Instruct] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

from retraction_kedro.probes import ProbeSchedule, binary_scores, predict, train_probes  # noqa: E402
from retraction_kedro.probes.training import standardizer  # noqa: E402


def load_activations(model: str):
    """The latest truthfulness activations and labels, through the project's Kedro catalog."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, runtime_params={"model": {"name": model}}) as session:
        catalog = session.load_context().catalog
        try:
            data = {
                split: (catalog.load(f"geo_truthfulness.hidden_{split}")["hidden"], catalog.load(f"geo_truthfulness.index_{split}"))
                for split in ("train", "test")
            }
        except Exception as error:
            raise SystemExit(f"No truthfulness activations for {model}: run `kedro run --pipelines activations` first ({error})")
    return {split: (hidden, torch.tensor(index["label"].to_list())) for split, (hidden, index) in data.items()}


class SeededBatches(torch.utils.data.Sampler):
    """One ``randperm`` per epoch from a seeded generator, cut into minibatches: the batched trainer's order.

    (RandomSampler draws an extra permutation per epoch, so it cannot reproduce that order.)
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.generator = n, batch_size, torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator)
        return iter([order[i : i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)])

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def per_layer_loop(x, y, xv, yv, schedules, batch_size, seed):
    """The paper's structure: one probe, one DataLoader and one optimiser per layer.

    Same zero init and the same minibatch order as the batched trainer, so any accuracy
    gap measures a difference in computation, not in luck.
    """
    layers, hidden = x.shape[1:]
    mean, std = standardizer(x)
    weights = torch.zeros(layers, hidden)
    ordered = sorted(schedules, key=lambda s: s.from_layer)
    for layer in range(layers):
        schedule = [s for s in ordered if layer >= min(layers - 1, round(s.from_layer * layers))][-1]
        features = (x[:, layer] - mean[layer]) / std[layer]
        val = (xv[:, layer] - mean[layer]) / std[layer]
        probe = torch.nn.Linear(hidden, 1, bias=False)
        torch.nn.init.zeros_(probe.weight)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
        dataset = torch.utils.data.TensorDataset(features, y.float())
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=SeededBatches(len(y), batch_size, seed))
        best = -1.0
        for _ in range(schedule.epochs):
            for batch_x, batch_y in loader:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(batch_x).squeeze(1), batch_y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                predicted = probe(val).squeeze(1) > 0
                score = binary_scores(predicted.unsqueeze(1), yv)["balanced_accuracy"].item()
                if score > best:
                    best, weights[layer] = score, probe.weight.detach()[0].clone()
    return {"weight": weights, "mean": mean, "std": std}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--output", default=str(ROOT / "data/08_reporting/benchmarks/probing.json"))
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads for both sides (default: torch's). On a machine shared with other "
        "CPU jobs, 1 avoids OpenMP oversubscription, which slows both sides 10-50x and swamps the comparison.",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=3,
        help="time each side this many times, alternating, and compare the fastest runs (both sides are deterministic)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import yaml

    probing = yaml.safe_load((ROOT / "conf/base/parameters_probing.yml").read_text())["probing"]
    schedules = [ProbeSchedule(**s) for s in probing["schedules"]]
    data = load_activations(args.model)
    x, y = data["train"]
    order = list(range(len(y)))
    random.Random(probing["seed"]).shuffle(order)
    cut = int(len(order) * probing["validation_fraction"])
    val, fit = sorted(order[:cut]), sorted(order[cut:])
    xt, yt = data["test"]

    warm = [ProbeSchedule(s.from_layer, s.lr, s.weight_decay, 1) for s in schedules]  # allocator and thread-pool warm-up
    train_probes(x[fit], y[fit], x[val], y[val], warm, probing["batch_size"], probing["seed"])
    per_layer_loop(x[fit], y[fit], x[val], y[val], warm, probing["batch_size"], probing["seed"])
    batched_times, loop_times = [], []
    for _ in range(max(1, args.repeats)):  # alternating, so that both sides see the same background load
        start = time.perf_counter()
        batched = train_probes(x[fit], y[fit], x[val], y[val], schedules, probing["batch_size"], probing["seed"])
        batched_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        looped = per_layer_loop(x[fit], y[fit], x[val], y[val], schedules, probing["batch_size"], probing["seed"])
        loop_times.append(time.perf_counter() - start)
    batched_s, loop_s = min(batched_times), min(loop_times)

    acc_batched = binary_scores(predict(batched, xt) > 0.5, yt)["accuracy"]
    acc_loop = binary_scores(predict(looped, xt) > 0.5, yt)["accuracy"]
    gap = (acc_batched - acc_loop).abs()
    result = {
        "model": args.model,
        "examples_train": len(fit),
        "examples_test": len(yt),
        "layers": x.shape[1],
        "hidden": x.shape[2],
        "batched_seconds": batched_s,
        "per_layer_loop_seconds": loop_s,
        "speedup": loop_s / batched_s,
        "batched_seconds_all": batched_times,
        "per_layer_loop_seconds_all": loop_times,
        "max_accuracy_gap": gap.max().item(),
        "test_accuracy_batched": acc_batched.tolist(),
        "test_accuracy_per_layer_loop": acc_loop.tolist(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    print(f"{'layer':>5}{'batched':>9}{'loop':>8}")
    for layer, (a, b) in enumerate(zip(acc_batched.tolist(), acc_loop.tolist())):
        print(f"{layer:>5}{a:>9.3f}{b:>8.3f}")
    print(f"batched {batched_s:.2f} s, per-layer loop {loop_s:.2f} s: speedup {result['speedup']:.1f}x; "
          f"max accuracy gap {result['max_accuracy_gap']:.3f}")  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
