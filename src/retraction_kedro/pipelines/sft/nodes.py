"""SFT for retraction: teach the model to say whether the answer it just gave is correct."""

from __future__ import annotations

import logging
import random
from typing import Any

import polars as pl

from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.config import FINETUNED_PREFIX
from retraction_kedro.config.parameters import EvidenceParameters, ModelParameters, SftParameters, SplitSelection
from retraction_kedro.lm import LoraSettings, fine_tune_lora
from retraction_kedro.pipelines.data_construction.selection import select_by_class
from retraction_kedro.pipelines.evaluation.nodes import compare_runs, judged_metrics, mlflow_metrics

logger = logging.getLogger(__name__)


def build_sft_examples(continuations: pl.DataFrame, sft: dict[str, Any]) -> pl.DataFrame:
    """The continuation prompt (question -> the model's answer, left open) and the completion that
    finishes the assistant's message as ``targets.correct`` or ``targets.wrong`` by correctness; with
    ``sft.balance``, as many right as wrong answers (the continuation train set keeps every wrong one)."""
    settings = SftParameters.parse(sft, "sft")
    targets = settings.targets.model_dump()
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation train set is empty; run data_construction first (or lower its filters)")
    if settings.balance:
        rows = select_by_class(rows, SplitSelection(balance=True), random.Random(f"{settings.training.get('seed', 0)}-sft"))
    examples = []
    for number, row in enumerate(rows):
        messages = list(row["messages"])
        if not messages or messages[-1]["role"] != "assistant" or messages[-1]["content"].strip() != str(row["name"]).strip():
            raise ValueError(f"continuation_train, row {number}: 'messages' must end with the assistant's answer {row['name']!r}")
        target = targets["correct" if row["result"] else "wrong"].format(name=row["name"])
        examples.append(
            {
                "index": row["index"],
                "question": row["question"],
                "name": row["name"],
                "result": bool(row["result"]),
                "messages": messages,
                "target": target,
                "completion": target[len(str(row["name"])) :],
            }
        )
    logger.info("%d SFT examples (%d with a correct answer)", len(examples), sum(e["result"] for e in examples))
    return rows_to_frame(examples)


def fine_tune(examples: pl.DataFrame, model: dict[str, Any], sft: dict[str, Any], runtime: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A LoRA adapter (plus, with ``sft.save_merged``, the merged weights) and its per-step loss curve."""
    settings = LoraSettings.from_params(sft["training"])
    result = fine_tune_lora(
        ModelParameters.parse(model, "model").spec,
        examples["messages"].to_list(),
        examples["completion"].to_list(),
        settings,
        resume_dir=runtime.get("resume_dir"),
        show_progress=runtime.get("show_progress", True),
    )
    if not result.log_history:
        raise RuntimeError("Fine-tuning logged no step; check sft.training (epochs, batch_size)")
    first, last = result.log_history[0]["loss"], result.log_history[-1]["loss"]
    logger.info("Fine-tuning loss %.3f -> %.3f over %d steps", first, last, len(result.log_history))
    artifact: dict[str, Any] = {"adapter": [result.adapter, result.tokenizer]}
    if sft.get("save_merged"):
        artifact["merged"] = [result.merged_export(), result.tokenizer]
    curve = {
        name: [{"value": float(entry[key]), "step": int(entry["step"])} for entry in result.log_history]
        for name, key in (("train_loss", "loss"), ("learning_rate", "learning_rate"))
    }
    return artifact, curve


def compare_with_base(truthfulness_of: dict[str, str], evidence: dict[str, Any], **inputs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Base and fine-tuned models side by side, one row per (model, evaluated testbed): retraction with
    intervals, its paired change from the base model on the same test examples (bootstrap interval,
    exact McNemar p), and the best probe layers.

    Inputs are named ``judged__<model>__<testbed>`` (judged test continuations),
    ``probes__<model>__<truthfulness>`` and ``prediction__<model>__<testbed>`` (probe summaries);
    ``<model>`` is ``base`` or ``finetuned_<trained testbed>``; ``truthfulness_of`` maps each testbed
    to the truthfulness set it pairs with.
    """
    options = EvidenceParameters.parse(evidence, "evidence")
    models = sorted({key.split("__")[1] for key in inputs}, key=lambda m: (m != "base", m))
    testbeds = sorted({key.split("__")[2] for key in inputs if key.startswith("judged__")})
    table = []
    for model in models:
        trained_on = None if model == "base" else model.removeprefix(FINETUNED_PREFIX)
        for testbed in testbeds:
            judged, base = inputs[f"judged__{model}__{testbed}"], inputs[f"judged__base__{testbed}"]
            metrics = judged_metrics(judged) if model == "base" else compare_runs(judged, base, options)
            truthfulness = inputs[f"probes__{model}__{truthfulness_of[testbed]}"]["best_layer"]
            prediction = inputs[f"prediction__{model}__{testbed}"]["best_layer_for_retraction_prediction"]
            table.append({
                "model": model, "trained_on": trained_on, "evaluated_on": testbed,
                "distribution": "base" if trained_on is None else ("in" if trained_on == testbed else "out"),
                **metrics,
                "probe_truthfulness_layer": truthfulness["layer"], "probe_truthfulness_accuracy": truthfulness["accuracy"],
                "probe_retraction_prediction_layer": prediction["layer"],
                "probe_retraction_prediction_accuracy": prediction["retraction_prediction_accuracy"],
            })  # fmt: skip
            change = metrics.get("change", {}).get("retraction_recall", {})
            logger.info("%s on %s: recall %s, change %s (p %s)", model, testbed, metrics["retraction_recall"]["value"], change.get("value"), change.get("p_value"))
    numeric = {
        f"{row['model']}.{row['evaluated_on']}": {k: v for k, v in row.items() if k not in ("model", "trained_on", "evaluated_on", "distribution")}
        for row in table
    }
    return table, mlflow_metrics(numeric)
