"""Belief probes per layer, and how well they predict correctness and retraction."""

from __future__ import annotations

import logging
import random
from typing import Any

import plotly.graph_objects as go
import polars as pl
import torch

from retraction_kedro.probes import ProbeSchedule, binary_scores, fit_sklearn_probes, group_accuracy, predict, train_probes

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
    x = _checked(hidden_train, index_train, "truthfulness train")
    y = torch.tensor(index_train["label"].to_list())
    if probing["select_epoch_on"] == "test":  # the paper's choice, for exact reproduction
        fit, val = list(range(len(y))), None
        xv, yv = _checked(hidden_test, index_test, "truthfulness test"), torch.tensor(index_test["label"].to_list())
    elif probing["select_epoch_on"] == "validation":
        order = list(range(len(y)))
        random.Random(probing["seed"]).shuffle(order)
        cut = int(len(order) * probing["validation_fraction"])
        val, fit = sorted(order[:cut]), sorted(order[cut:])
        xv, yv = x[val], y[val]
    else:
        raise ValueError(f"probing.select_epoch_on must be 'validation' or 'test', got {probing['select_epoch_on']!r}")
    if probing["trainer"] == "batched":
        schedules = [ProbeSchedule(**s) for s in probing["schedules"]]
        probes = train_probes(x[fit], y[fit], xv, yv, schedules, probing["batch_size"], probing["seed"], probing["standardize"])
    elif probing["trainer"] == "sklearn":
        probes = fit_sklearn_probes(x[fit], y[fit], probing["sklearn_c"], probing["seed"], xv, yv)
    else:
        raise ValueError(f"probing.trainer must be 'batched' or 'sklearn', got {probing['trainer']!r}")
    probes["layers"] = hidden_train.get("layers", torch.arange(x.shape[1]))
    history = {}
    if "train_loss" in probes:
        mean_loss = probes["train_loss"].mean(1)
        history["probe_train_loss"] = [{"value": float(v), "step": epoch} for epoch, v in enumerate(mean_loss)]
    return probes, history


def evaluate_on_truthfulness(probes: dict[str, torch.Tensor], hidden_test: dict[str, torch.Tensor], index_test: pl.DataFrame) -> pl.DataFrame:
    x = _checked(hidden_test, index_test, "truthfulness test")
    scores = binary_scores(predict(probes, x) > 0.5, torch.tensor(index_test["label"].to_list()))
    return pl.DataFrame({"layer": probes["layers"].tolist(), **{k: v.tolist() for k, v in scores.items()}})


def evaluate_on_testbed(
    probes: dict[str, torch.Tensor], hidden_test: dict[str, torch.Tensor], judged: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per layer: accuracy against correctness and retraction prediction; per example: the scores."""
    x = _checked(hidden_test, judged, "continuation test set")
    probability = predict(probes, x)
    believed_correct = probability > 0.5
    result = torch.tensor(judged["result"].to_list())
    retracted = torch.tensor(judged["retracted"].to_list())
    per_layer = {"layer": probes["layers"].tolist(), "correctness_accuracy": binary_scores(believed_correct, result)["accuracy"].tolist()}
    per_layer |= {k: v.tolist() for k, v in group_accuracy(believed_correct, result, retracted).items()}
    scores = judged.select(["index", "name", "result", "retracted"]).with_columns(
        pl.Series("probe_correct_probability", probability.tolist())
    )
    return pl.DataFrame(per_layer), scores


def _history(table: pl.DataFrame) -> dict[str, list[dict[str, float]]]:
    return {
        column: [{"value": float(v), "step": int(layer)} for layer, v in zip(table["layer"], table[column])]
        for column in table.columns
        if column != "layer"
    }


def summarize_truthfulness(metrics: pl.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    best = metrics.sort(["balanced_accuracy", "layer"], descending=[True, False]).row(0, named=True)
    return {"best_layer": best, "layers": metrics.to_dicts()}, _history(metrics)


def summarize_testbed(
    metrics: pl.DataFrame, truthfulness_metrics: pl.DataFrame, testbed: str
) -> tuple[dict[str, Any], dict[str, Any], go.Figure, go.Figure]:
    best = metrics.sort(["retraction_prediction_accuracy", "layer"], descending=[True, False]).row(0, named=True)
    figure = go.Figure()
    for table, column, label in (
        (truthfulness_metrics, "accuracy", "truthfulness test accuracy"),
        (metrics, "correctness_accuracy", f"{testbed}: accuracy against correctness"),
        (metrics, "retraction_prediction_accuracy", f"{testbed}: retraction prediction accuracy"),
    ):
        figure.add_trace(go.Scatter(x=table["layer"].to_list(), y=table[column].to_list(), mode="lines+markers", name=label))
    figure.update_layout(title=f"Belief probe accuracy by layer ({testbed})", xaxis_title="layer", yaxis_title="accuracy", yaxis_range=[0, 1])
    # the figure twice: a versioned plotly JSON for kedro-viz, an HTML page attached to the MLflow run
    return {"best_layer_for_retraction_prediction": best, "layers": metrics.to_dicts()}, _history(metrics), figure, figure
