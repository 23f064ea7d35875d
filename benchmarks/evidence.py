"""Bootstrap intervals per layer: the vectorized estimators vs scikit-learn called once per resample and layer.

Same examples, same resamples on both sides (the counts from ``resample_counts``; scikit-learn gets them as
sample weights), and the resampled statistics are checked to agree. Synthetic scores [N, L] with a planted
signal growing with the layer. Writes data/08_reporting/benchmarks/evidence.json.

    python benchmarks/evidence.py [--examples 1500] [--layers 30] [--resamples 1000] [--baseline-resamples 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from retraction_kedro.evidence import agreement, auroc_by_layer, paired_difference_by_layer
from retraction_kedro.evidence.agreement import weighted_kappa
from retraction_kedro.evidence.bootstrap import resample_counts
from retraction_kedro.evidence.ranking import weighted_auroc


def seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--baseline-resamples", type=int, default=100, help="resamples both sides run in the comparison"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n, layers = args.examples, args.layers
    labels = rng.random(n) < 0.5
    scores = rng.standard_normal((n, layers)) + labels[:, None] * np.linspace(0, 2, layers)
    other = rng.random((n, layers)) < 0.75
    rater = np.where(rng.random(n) < 0.15, ~labels, labels)

    counts = resample_counts(n, args.baseline_resamples, seed=1)

    def ours():
        return np.stack([weighted_auroc(counts, scores[:, layer], labels) for layer in range(layers)], axis=1)

    def scikit_learn():
        return np.array([[roc_auc_score(labels, scores[:, layer], sample_weight=row) for layer in range(layers)]
                         for row in counts])  # fmt: skip

    gap = float(np.abs(ours() - scikit_learn()).max())
    kappa_gap = float(np.abs(weighted_kappa(counts, labels, rater)
                             - [cohen_kappa_score(labels, rater, sample_weight=row) for row in counts]).max())  # fmt: skip
    timings = {
        "auroc_vectorized_s": [],
        "auroc_scikit_learn_s": [],
        "kappa_vectorized_s": [],
        "kappa_scikit_learn_s": [],
    }
    for _ in range(args.repeats):  # alternate, so a busy neighbour slows both sides alike
        timings["auroc_vectorized_s"].append(seconds(ours, 1))
        timings["auroc_scikit_learn_s"].append(seconds(scikit_learn, 1))
        timings["kappa_vectorized_s"].append(seconds(lambda: weighted_kappa(counts, labels, rater), 1))
        timings["kappa_scikit_learn_s"].append(
            seconds(lambda: [cohen_kappa_score(labels, rater, sample_weight=row) for row in counts], 1)
        )

    def full_auroc():
        return auroc_by_layer(scores, labels, seed=0, resamples=args.resamples)

    def full_paired():
        return paired_difference_by_layer(labels[:, None] == (scores > 0.5), other, seed=0, resamples=args.resamples)

    median = {name: statistics.median(values) for name, values in timings.items()}
    result = {
        "examples": n,
        "layers": layers,
        "compared_resamples": args.baseline_resamples,
        "auroc_max_abs_difference": gap,
        "kappa_max_abs_difference": kappa_gap,
        **median,
        "auroc_speedup": median["auroc_scikit_learn_s"] / median["auroc_vectorized_s"],
        "kappa_speedup": median["kappa_scikit_learn_s"] / median["kappa_vectorized_s"],
        "full_resamples": args.resamples,
        "auroc_by_layer_full_s": seconds(full_auroc, args.repeats),
        "paired_difference_by_layer_full_s": seconds(full_paired, args.repeats),
        "agreement_full_s": seconds(lambda: agreement(labels, rater, seed=0, resamples=args.resamples), args.repeats),
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }
    for name, value in result.items():
        print(f"{name:36s} {value:.4g}" if isinstance(value, float) else f"{name:36s} {value}")
    out = ROOT / "data/08_reporting/benchmarks/evidence.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
