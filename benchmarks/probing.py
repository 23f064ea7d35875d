"""The batched probe trainer vs per-layer loops, on the embedded model's truthfulness hidden states.

Every trainer uses the same standardization, schedule (``conf/base/parameters_probing.yml``), zero
init, minibatch order (one ``randperm`` per epoch from the seeded generator) and epoch selection on
the same validation split, so accuracies must agree and only the computation differs:
  - ``batched``: ``train_probes``, all layers as one computation (the project's trainer);
  - ``per_layer_autograd``: the baseline, the fastest honest per-layer loop: per layer a contiguous
    tensor slice, ``nn.Linear`` with autograd and ``torch.optim.AdamW``, minibatches by indexing;
  - ``per_layer_written_out``: ``train_probes`` called on one layer at a time (its written-out
    gradient and AdamW), which separates the gain of batching layers from that of skipping autograd;
  - ``per_layer_dataloader``: the paper's structure, a ``DataLoader`` per layer (the reference the
    earlier benchmark used; most of its cost is the loader).

Features: the embedded truthfulness set built by ``world.geo.truthfulness_questions`` (seed 0) and
captured here (last answer token, all layers, as the activations pipeline takes it), so the benchmark
needs no earlier ``kedro run``. Writes data/08_reporting/benchmarks/probing.json.

    python benchmarks/probing.py [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import ROOT, machine, summary, timed, write  # noqa: E402

from retraction_kedro.naming import DEFAULT_CACHE_DIR  # noqa: E402
from retraction_kedro.probes import ProbeSchedule, binary_scores, predict, train_probes  # noqa: E402
from retraction_kedro.probes.training import standardizer  # noqa: E402


def truthfulness_features(
    per_relation: int, batch_size: int
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict]:
    """Hidden states ``[N, layers, hidden]`` and labels of both splits: the answer's last token, no system turn."""
    from retraction_kedro.lm import ModelSpec, capture_hidden_states, continuation_prompt, load_language_model
    from retraction_kedro.world.geo import truthfulness_questions

    lm = load_language_model(ModelSpec(cache_dir=str(ROOT / DEFAULT_CACHE_DIR)))
    splits = dict(zip(("train", "test"), truthfulness_questions(seed=0, per_relation=per_relation), strict=True))
    data = {}
    for split, rows in splits.items():
        prompts = []
        for row in rows:
            turns = [m for m in row["messages"] if m["role"] not in ("system", "assistant")]
            answer = str(row["answer"]).strip().rstrip(".").strip()
            prompts.append(continuation_prompt(lm.tokenizer, [*turns, {"role": "assistant", "content": answer}]))
        hidden = capture_hidden_states(lm, prompts, batch_size=batch_size, desc=f"truthfulness {split}")
        data[split] = (hidden, torch.tensor([int(row["label"]) for row in rows]))
    questions = f"retraction_kedro.world.geo.truthfulness_questions(seed=0, per_relation={per_relation})"
    source = {"model": lm.spec.name, "questions": questions}
    return data, source


def schedule_of(schedules: list[ProbeSchedule], layer: int, layers: int) -> ProbeSchedule:
    """The batched trainer's rule: a schedule applies from round(from_layer * layers) upwards."""
    ordered = sorted(schedules, key=lambda s: s.from_layer)
    return [s for s in ordered if layer >= min(layers - 1, round(s.from_layer * layers))][-1]


def epoch_orders(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator) for _ in range(epochs)]


def per_layer_autograd(x, y, xv, yv, schedules, batch_size, seed):
    """One probe per layer on its own contiguous slice, autograd and ``torch.optim.AdamW``; the minibatches of
    the batched trainer; each layer trains for its own schedule's epochs only."""
    n, layers, hidden = x.shape
    mean, std = standardizer(x)
    orders = epoch_orders(n, max(s.epochs for s in schedules), seed)
    weights, target = torch.zeros(layers, hidden), y.float()
    for layer in range(layers):
        schedule = schedule_of(schedules, layer, layers)
        features = ((x[:, layer] - mean[layer]) / std[layer]).contiguous()
        val = (xv[:, layer] - mean[layer]) / std[layer]
        probe = torch.nn.Linear(hidden, 1, bias=False)
        torch.nn.init.zeros_(probe.weight)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
        best = -1.0
        for epoch in range(schedule.epochs):
            for start in range(0, n, batch_size):
                batch = orders[epoch][start : start + batch_size]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    probe(features[batch]).squeeze(1), target[batch]
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                score = binary_scores(probe(val) > 0, yv)["balanced_accuracy"].item()
            if score > best:
                best, weights[layer] = score, probe.weight.detach()[0].clone()
    return {"weight": weights, "mean": mean, "std": std}


def per_layer_written_out(x, y, xv, yv, schedules, batch_size, seed):
    """``train_probes`` on one layer at a time (that layer's schedule): no batching across layers."""
    layers = x.shape[1]
    parts = []
    for layer in range(layers):
        s = schedule_of(schedules, layer, layers)
        one = [ProbeSchedule(0.0, s.lr, s.weight_decay, s.epochs)]
        parts.append(train_probes(x[:, layer : layer + 1], y, xv[:, layer : layer + 1], yv, one, batch_size, seed))
    return {key: torch.cat([p[key] for p in parts]) for key in ("weight", "mean", "std")}


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
        return (self.n + self.batch_size - 1) // self.batch_size


def per_layer_dataloader(x, y, xv, yv, schedules, batch_size, seed):
    """The paper's structure: one probe, one DataLoader and one optimiser per layer."""
    layers, hidden = x.shape[1:]
    mean, std = standardizer(x)
    weights = torch.zeros(layers, hidden)
    for layer in range(layers):
        schedule = schedule_of(schedules, layer, layers)
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
                score = binary_scores(probe(val) > 0, yv)["balanced_accuracy"].item()
            if score > best:
                best, weights[layer] = score, probe.weight.detach()[0].clone()
    return {"weight": weights, "mean": mean, "std": std}


TRAINERS = {
    "batched": train_probes,
    "per_layer_autograd": per_layer_autograd,
    "per_layer_written_out": per_layer_written_out,
    "per_layer_dataloader": per_layer_dataloader,
}
BASELINE = "per_layer_autograd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per trainer, alternating; figures are medians")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for every trainer")
    parser.add_argument(
        "--per-relation", type=int, default=400, help="truthfulness questions per relation (the default set)"
    )
    parser.add_argument("--capture-batch-size", type=int, default=32)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    data, source = truthfulness_features(args.per_relation, args.capture_batch_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    probing = yaml.safe_load((ROOT / "conf/base/parameters_probing.yml").read_text())["probing"]
    schedules = [ProbeSchedule(**s) for s in probing["schedules"]]
    x, y = data["train"]
    order = list(range(len(y)))
    random.Random(probing["seed"]).shuffle(order)
    cut = int(len(order) * probing["validation_fraction"])
    val, fit = sorted(order[:cut]), sorted(order[cut:])
    xt, yt = data["test"]
    inputs = (x[fit], y[fit], x[val], y[val])

    warm = [ProbeSchedule(s.from_layer, s.lr, s.weight_decay, 1) for s in schedules]
    for trainer in TRAINERS.values():  # allocator and thread-pool warm-up
        trainer(*inputs, warm, probing["batch_size"], probing["seed"])
    seconds: dict[str, list[float]] = {name: [] for name in TRAINERS}
    probes = {}
    for repeat in range(args.repeats):  # alternating, so that all trainers see the same background load
        for name, trainer in TRAINERS.items():
            probes[name], elapsed = timed(partial(trainer, *inputs, schedules, probing["batch_size"], probing["seed"]))
            seconds[name].append(elapsed)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in seconds.items()), flush=True)

    accuracy = {name: binary_scores(predict(p, xt) > 0.5, yt)["accuracy"] for name, p in probes.items()}
    batched_s = statistics.median(seconds["batched"])
    result = {
        "features": source,
        "examples": {"train": len(fit), "validation": len(val), "test": len(yt)},
        "layers": x.shape[1],
        "hidden": x.shape[2],
        "schedules": probing["schedules"],
        "baseline": BASELINE,
        "seconds": {name: summary(values) for name, values in seconds.items()},
        "speedup": {
            name: statistics.median(values) / batched_s for name, values in seconds.items() if name != "batched"
        },
        "max_accuracy_gap_to_batched": {
            name: (acc - accuracy["batched"]).abs().max().item() for name, acc in accuracy.items() if name != "batched"
        },
        "test_accuracy": {name: acc.tolist() for name, acc in accuracy.items()},
        "best_layer_test_accuracy": {name: acc.max().item() for name, acc in accuracy.items()},
        "machine": machine(),
    }
    print(f"{'layer':>5}" + "".join(f"{name:>24}" for name in TRAINERS))
    for layer in range(x.shape[1]):
        print(f"{layer:>5}" + "".join(f"{accuracy[name][layer].item():>24.3f}" for name in TRAINERS))
    for name, values in result["seconds"].items():
        speed = f", batched is {result['speedup'][name]:.1f}x faster" if name != "batched" else ""
        print(f"{name}: {values['median']:.2f} s (min {values['min']:.2f}, max {values['max']:.2f}){speed}")
    print(f"max accuracy gap to batched: {result['max_accuracy_gap_to_batched']}")
    write("probing", result, args.output)


if __name__ == "__main__":
    main()
