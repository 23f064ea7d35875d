"""Belief probes per layer, and how well they predict correctness and retraction."""

from __future__ import annotations

import logging
import random
from typing import Any

import plotly.graph_objects as go
import polars as pl
import torch

from retraction_kedro.config.parameters import EvidenceParameters, ProbingParameters
from retraction_kedro.evidence import (
    accuracy_by_layer,
    auroc_by_layer,
    balanced_accuracy_by_layer,
    flatten,
    proportions,
)
from retraction_kedro.pipelines.figures import probe_accuracy_figure
from retraction_kedro.probes import ProbeSchedule, fit_sklearn_probes, predict, train_probes

logger = logging.getLogger(__name__)


def _checked(tensors: dict[str, torch.Tensor], table: pl.DataFrame, what: str) -> torch.Tensor:
    if "hidden" not in tensors:
        raise ValueError(f"{what}: the tensor file has no 'hidden' entry (found {sorted(tensors)}); rerun the activations pipeline")
    hidden = tensors["hidden"]
    if hidden.ndim != 3 or hidden.shape[0] != table.height:
        raise ValueError(
            f"{what}: hidden states {tuple(hidden.shape)} do not match the table's {table.height} rows; "
            "the two come from different runs of the activations pipeline (pin both with --load-versions)"
        )
    return hidden


def train_belief_probes(
    hidden_train: dict[str, torch.Tensor],
    index_train: pl.DataFrame,
    hidden_test: dict[str, torch.Tensor],
    index_test: pl.DataFrame,
    probing: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One probe per layer on truthfulness hidden states; the epoch is chosen on a held-out split."""
    settings = ProbingParameters.parse(probing, "probing")
    x = _checked(hidden_train, index_train, "truthfulness train")
    y = torch.tensor(index_train["label"].to_list())
    if settings.select_epoch_on == "test":  # the paper's choice, for exact reproduction
        fit, val = list(range(len(y))), None
        xv, yv = _checked(hidden_test, index_test, "truthfulness test"), torch.tensor(index_test["label"].to_list())
    else:
        order = list(range(len(y)))
        random.Random(settings.seed).shuffle(order)
        cut = int(len(order) * settings.validation_fraction)
        if cut == 0:
            raise ValueError(
                f"Parameter probing.validation_fraction: {settings.validation_fraction} of {len(y)} truthfulness "
                "training examples holds none out to choose the epoch on; raise it or add examples"
            )
        val, fit = sorted(order[:cut]), sorted(order[cut:])
        xv, yv = x[val], y[val]
    if len(yv) and len(set(yv.tolist())) < 2:  # a choice on one class is defined but weak: said, not hidden
        logger.warning(
            "The probes' epoch (sklearn: C) is chosen on %d examples that all have label %d; their balanced accuracy "
            "is that one class's accuracy", len(yv), int(yv[0]),
        )  # fmt: skip
    if settings.trainer == "batched":
        schedules = [ProbeSchedule(**s.model_dump()) for s in settings.schedules]
        probes = train_probes(x[fit], y[fit], xv, yv, schedules, settings.batch_size, settings.seed, settings.standardize)
    else:
        probes = fit_sklearn_probes(x[fit], y[fit], settings.sklearn_c, settings.seed, xv, yv)
    probes["layers"] = hidden_train.get("layers", torch.arange(x.shape[1]))
    history = {}
    if "train_loss" in probes:
        mean_loss = probes["train_loss"].mean(1)
        history["probe_train_loss"] = [{"value": float(v), "step": epoch} for epoch, v in enumerate(mean_loss)]
    return probes, history


def _table(layers: torch.Tensor, columns: dict[str, list[Any]]) -> pl.DataFrame:
    """One row per layer; estimate columns hold ``{value, n, ci_low, ci_high, ...}``."""
    return pl.DataFrame([{"layer": int(layer), **{name: values[i] for name, values in columns.items()}} for i, layer in enumerate(layers.tolist())])


def evaluate_on_truthfulness(
    probes: dict[str, torch.Tensor], hidden_test: dict[str, torch.Tensor], index_test: pl.DataFrame, evidence: dict[str, Any]
) -> pl.DataFrame:
    """Per layer on the truthfulness test split: accuracy (Wilson interval), balanced accuracy and AUROC (bootstrap
    intervals); each undefined (None) where its classes are missing, never 0."""
    options = EvidenceParameters.parse(evidence, "evidence")
    bootstrap = {"seed": options.seed, "resamples": options.resamples}
    x = _checked(hidden_test, index_test, "truthfulness test")
    probability, labels = predict(probes, x), torch.tensor(index_test["label"].to_list())
    return _table(probes["layers"], {
        "accuracy": accuracy_by_layer(probability > 0.5, labels),
        "balanced_accuracy": balanced_accuracy_by_layer(probability > 0.5, labels, **bootstrap),
        "auroc": auroc_by_layer(probability, labels, **bootstrap),
    })  # fmt: skip


def evaluate_on_testbed(
    probes: dict[str, torch.Tensor], hidden_test: dict[str, torch.Tensor], judged: pl.DataFrame, evidence: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per layer: accuracy and AUROC against correctness, and the paper's retraction prediction (the probe
    'believes wrong' <=> the model retracts) with its AUROC and the precision of each belief, all with
    intervals; per example: the scores."""
    options = EvidenceParameters.parse(evidence, "evidence")
    bootstrap = {"seed": options.seed, "resamples": options.resamples}
    x = _checked(hidden_test, judged, "continuation test set")
    probability = predict(probes, x)
    believed_correct = probability > 0.5
    result = torch.tensor(judged["result"].to_list()).bool()
    retracted = torch.tensor(judged["retracted"].to_list()).bool()
    believed_wrong, r = ~believed_correct, retracted.unsqueeze(1)
    columns = {
        "correctness_accuracy": accuracy_by_layer(believed_correct, result),
        "correctness_auroc": auroc_by_layer(probability, result, **bootstrap),
        "retraction_prediction_accuracy": accuracy_by_layer(believed_wrong, retracted),
        "retraction_auroc": auroc_by_layer(1 - probability, retracted, **bootstrap),
        "believed_wrong_precision": proportions((believed_wrong & r).sum(0).tolist(), believed_wrong.sum(0).tolist()),
        "believed_right_precision": proportions((believed_correct & ~r).sum(0).tolist(), believed_correct.sum(0).tolist()),
    }
    for name, mask in {"correct_retracted": result & retracted, "correct_not_retracted": result & ~retracted,
                       "wrong_retracted": ~result & retracted, "wrong_not_retracted": ~result & ~retracted}.items():  # fmt: skip
        agree = (believed_correct[mask] == result[mask].unsqueeze(1)).sum(0)
        columns[f"accuracy_{name}"] = proportions(agree.tolist(), int(mask.sum()))
    scores = judged.select(["index", "name", "result", "retracted"]).with_columns(pl.Series("probe_correct_probability", probability.tolist()))
    return _table(probes["layers"], columns), scores


def _history(table: pl.DataFrame) -> dict[str, list[dict[str, float]]]:
    """MLflow per-layer series (``step=layer``): every estimate with its interval and n; undefined values left out."""
    history: dict[str, list[dict[str, float]]] = {}
    for row in table.iter_rows(named=True):
        layer = row.pop("layer")
        for name, value in flatten(row, drop_undefined=True).items():
            history.setdefault(name, []).append({"value": float(value), "step": int(layer)})
    return history


def _best(table: pl.DataFrame, column: str) -> dict[str, Any]:
    """The layer with the highest value of ``column`` (the lowest layer among ties); undefined values last."""
    value = lambda row: row[column]["value"] if isinstance(row[column], dict) else row[column]  # noqa: E731
    return max(table.iter_rows(named=True), key=lambda row: (value(row) is not None, value(row) or 0.0, -row["layer"]))


def summarize_truthfulness(metrics: pl.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"best_layer": _best(metrics, "balanced_accuracy"), "layers": metrics.to_dicts()}, _history(metrics)


def summarize_testbed(
    metrics: pl.DataFrame, truthfulness_metrics: pl.DataFrame, testbed: str
) -> tuple[dict[str, Any], dict[str, Any], go.Figure, go.Figure]:
    best = _best(metrics, "retraction_prediction_accuracy")
    figure = probe_accuracy_figure(metrics, truthfulness_metrics, testbed)
    # the figure twice: a versioned plotly JSON for kedro-viz, an HTML page attached to the MLflow run
    return {"best_layer_for_retraction_prediction": best, "layers": metrics.to_dicts()}, _history(metrics), figure, figure
