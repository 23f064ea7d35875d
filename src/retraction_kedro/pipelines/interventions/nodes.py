"""Belief steering and attention patching, with retraction measured under each configuration."""

from __future__ import annotations

import logging
from typing import Any

import plotly.graph_objects as go
import polars as pl
import torch

from retraction_kedro.lm import (
    AttentionPatch,
    GenerationSettings,
    Steering,
    ValuePatch,
    continuation_prompt,
    generate_texts,
    load_language_model,
    top_changed_heads,
)
from retraction_kedro.pipelines.evaluation.metrics import retraction_metrics
from retraction_kedro.pipelines.evaluation.nodes import judge_continuations

logger = logging.getLogger(__name__)


def steering_directions(hidden_train: dict[str, torch.Tensor], index_train: pl.DataFrame, interventions: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Per layer: mean hidden state of correct minus wrong truthfulness answers (training split)."""
    hidden = hidden_train["hidden"].float()
    if hidden.shape[0] != index_train.height:
        raise ValueError(f"truthfulness hidden states {tuple(hidden.shape)} do not match the index's {index_train.height} rows")
    labels = torch.tensor(index_train["label"].to_list()).bool()
    if labels.all() or not labels.any():
        raise ValueError("steering directions need both correct and wrong truthfulness answers")
    directions = hidden[labels].mean(0) - hidden[~labels].mean(0)
    if interventions.get("normalize_directions"):
        directions = directions / directions.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return {"directions": directions, "layers": hidden_train.get("layers", torch.arange(hidden.shape[1]))}


def _layers(band: list[int], directions: dict[str, torch.Tensor]) -> list[int]:
    """A band [first, last] of layer numbers (inclusive) -> rows of the directions tensor."""
    first, last = band
    positions = {int(layer): row for row, layer in enumerate(directions["layers"].tolist())}
    missing = [layer for layer in range(first, last + 1) if layer not in positions]
    if missing:
        raise ValueError(f"steering band {band} needs directions for layers {missing}; activations.layers must include them")
    return [positions[layer] for layer in range(first, last + 1)]


class _Runner:
    """Generates the continuations of one testbed under a configuration and judges them."""

    def __init__(self, continuations, free_train, free_test, testbed, evaluation, interventions, model, runtime, suffix=""):
        self.rows = continuations.to_dicts()
        if not self.rows:
            raise ValueError("The continuation test set is empty; run data_construction first")
        self.lm = load_language_model(model)
        self.prompts = [continuation_prompt(self.lm.tokenizer, row["messages"], suffix=suffix) for row in self.rows]
        self.settings = GenerationSettings(
            max_new_tokens=interventions["max_new_tokens"], stop_at_newline=True, batch_size=model.get("batch_size", 16)
        )
        self.judge_inputs = (free_train, free_test, testbed, evaluation, runtime)
        self.runtime, self.suffix = runtime, suffix

    def run(self, name: str, interventions: list) -> tuple[pl.DataFrame, dict[str, float]]:
        responses = generate_texts(
            self.lm, self.prompts, self.settings, self.runtime.get("resume_dir"), f"{name}", self.runtime.get("show_progress", True),
            interventions=interventions,
        )  # fmt: skip
        table = pl.DataFrame(
            [{**row, "suffix": self.suffix, "response": text} for row, text in zip(self.rows, responses)], infer_schema_length=None
        )
        judged = judge_continuations(table, *self.judge_inputs)
        metrics = retraction_metrics(judged["result"].to_list(), judged["retracted"].to_list(), int((~judged["judge_valid"]).sum()))
        logger.info("%s: %s", name, {k: round(v, 3) for k, v in metrics.items() if "retraction" in k})
        return judged.with_columns(pl.lit(name).alias("configuration")), metrics


def _mlflow(metrics_by_name: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {f"{name}.{key}": {"value": value, "step": 0} for name, metrics in metrics_by_name.items() for key, value in metrics.items()}


def steer_continuations(
    continuations: pl.DataFrame,
    directions: dict[str, torch.Tensor],
    free_questions_train: pl.DataFrame,
    free_questions_test: pl.DataFrame,
    testbed: dict[str, Any],
    evaluation: dict[str, Any],
    interventions: dict[str, Any],
    model: dict[str, Any],
    runtime: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], dict[str, Any], go.Figure]:
    """No / negative / positive steering at the default band and alpha, then the sweep.

    Returns the judged responses of the main runs, the sweep table, the report, MLflow
    metrics (``steer_none.*``, ``steer_neg.*``, ``steer_pos.*``, ``steer_ablate.*``) and a plot of
    retraction rate against alpha per band.
    """
    steering = interventions["steering"]
    runner = _Runner(continuations, free_questions_train, free_questions_test, testbed, evaluation, interventions, model, runtime)
    v = directions["directions"]
    main_layers = _layers(steering["layers"], directions)
    tables, report = [], {}
    configurations = [("steer_none", []), ("steer_neg", [Steering(v, main_layers, -steering["alpha"], steering["every_token"])]),
                      ("steer_pos", [Steering(v, main_layers, steering["alpha"], steering["every_token"])])]  # fmt: skip
    if steering.get("ablate"):
        configurations.append(("steer_ablate", [Steering(v, main_layers, 0.0, steering["every_token"], ablate=True)]))
    for name, chosen in configurations:
        table, metrics = runner.run(name, chosen)
        tables.append(table)
        report[name] = metrics
    sweep_rows = [{"band": "none", "alpha": 0.0, **report["steer_none"]}]
    for band in steering["sweep_layers"]:
        rows = _layers(band, directions)
        for alpha in steering["sweep_alphas"]:
            for sign in (-1.0, 1.0):
                if list(band) == list(steering["layers"]) and alpha == steering["alpha"]:  # the main runs above
                    metrics = report["steer_neg" if sign < 0 else "steer_pos"]
                else:
                    _, metrics = runner.run(f"sweep {band[0]}-{band[1]} {sign * alpha:+g}", [Steering(v, rows, sign * alpha, steering["every_token"])])
                sweep_rows.append({"band": f"{band[0]}-{band[1]}", "alpha": sign * alpha, **metrics})
    sweep = pl.DataFrame(sweep_rows)
    figure = go.Figure()
    baseline = report["steer_none"]["retraction_rate"]
    for band in sweep.filter(pl.col("band") != "none")["band"].unique(maintain_order=True).to_list():
        part = sweep.filter(pl.col("band") == band).sort("alpha")
        alphas, rates = [0.0, *part["alpha"].to_list()], [baseline, *part["retraction_rate"].to_list()]
        order = sorted(range(len(alphas)), key=lambda i: alphas[i])
        figure.add_trace(go.Scatter(x=[alphas[i] for i in order], y=[rates[i] for i in order], mode="lines+markers", name=f"layers {band}"))
    figure.update_layout(title="Retraction rate under belief steering (negative alpha: toward 'wrong')",
                         xaxis_title="alpha (signed)", yaxis_title="retraction rate", yaxis_range=[0, 1])  # fmt: skip
    report["configuration"] = {key: steering.get(key) for key in ("layers", "alpha", "every_token", "ablate")}
    return pl.concat(tables, how="diagonal_relaxed"), sweep, report, _mlflow({k: v for k, v in report.items() if k != "configuration"}), figure


def patch_continuations(
    continuations: pl.DataFrame,
    directions: dict[str, torch.Tensor],
    free_questions_train: pl.DataFrame,
    free_questions_test: pl.DataFrame,
    testbed: dict[str, Any],
    evaluation: dict[str, Any],
    interventions: dict[str, Any],
    model: dict[str, Any],
    runtime: dict[str, Any],
) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """The paper's mechanism study, with the fixed suffix: steer at the answer's last token, record
    value vectors there and the suffix token's attention weights, then patch each into the
    unsteered run (values of every layer; attention of all heads, or the top-k changed heads)."""
    patching, steering = interventions["patching"], interventions["steering"]
    runner = _Runner(continuations, free_questions_train, free_questions_test, testbed, evaluation, interventions, model, runtime,
                     suffix=patching["suffix"])  # fmt: skip
    layers = list(range(runner.lm.num_layers))
    v, band = directions["directions"], _layers(steering["layers"], directions)
    base_values = ValuePatch(layers, "record", position=patching["value_position"])
    base_attention = AttentionPatch(layers, "record", position=patching["attention_position"])
    tables, report = [], {}
    table, report["patch_none"] = runner.run("patch_none", [base_values, base_attention])
    tables.append(table)
    for sign_name, sign in (("neg", -1.0), ("pos", 1.0)):
        values = ValuePatch(layers, "record", position=patching["value_position"])
        attention = AttentionPatch(layers, "record", position=patching["attention_position"])
        steer = Steering(v, band, sign * patching["alpha"], position=patching["steer_position"])
        table, report[f"patch_steered_{sign_name}"] = runner.run(f"patch_steered_{sign_name}", [steer, values, attention])
        tables.append(table)
        heads = top_changed_heads(base_attention.weights, attention.weights, patching["top_k_heads"])
        for name, intervention in (
            (f"patch_values_{sign_name}", ValuePatch(layers, "patch", values.values, position=patching["value_position"])),
            (f"patch_attention_{sign_name}", AttentionPatch(layers, "patch", attention.weights, position=patching["attention_position"])),
            (f"patch_attention_top{patching['top_k_heads']}_{sign_name}",
             AttentionPatch(layers, "patch", attention.weights, position=patching["attention_position"], heads=heads)),
        ):  # fmt: skip
            table, report[name] = runner.run(name, [intervention])
            tables.append(table)
    report["configuration"] = {**patching, "layers": steering["layers"]}
    return pl.concat(tables, how="diagonal_relaxed"), report, _mlflow({k: v for k, v in report.items() if k != "configuration"})
