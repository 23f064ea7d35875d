"""SFT for retraction: teach the model to say whether the answer it just gave is correct."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.lm import LoraSettings, ModelSpec, fine_tune_lora

logger = logging.getLogger(__name__)

RETRACTION_METRICS = ("answer_accuracy", "retraction_recall", "retraction_precision", "retraction_rate")


def build_sft_examples(continuations: pl.DataFrame, sft: dict[str, Any]) -> pl.DataFrame:
    """The continuation prompt (question -> the model's answer, left open) and the completion that
    finishes the assistant's message as ``targets.correct`` or ``targets.wrong`` by correctness."""
    targets = sft["targets"]
    for key in ("correct", "wrong"):
        if not str(targets.get(key, "")).startswith("{name}"):
            raise ValueError(f"sft.targets.{key} must start with '{{name}}' (the answer the prompt ends with); got {targets.get(key)!r}")
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation train set is empty; run data_construction first (or lower its filters)")
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
        ModelSpec.from_params(model),
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


def compare_with_base(**reports: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Base and fine-tuned models side by side, one row per (model, evaluated testbed).

    Inputs are named ``retraction__<model>__<testbed>``, ``probes__<model>__<truthfulness>`` and
    ``prediction__<model>__<testbed>``; ``<model>`` is ``base`` or ``finetuned_<trained testbed>``.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    truthfulness: dict[str, dict[str, Any]] = {}
    for key, report in reports.items():
        kind, model, target = key.split("__")
        if kind == "probes":
            truthfulness[model] = report["best_layer"]
            continue
        row = rows.setdefault((model, target), {"model": model, "evaluated_on": target})
        if kind == "retraction":
            row.update({name: report[name] for name in RETRACTION_METRICS})
        else:
            best = report["best_layer_for_retraction_prediction"]
            row["probe_retraction_prediction_accuracy"] = best["retraction_prediction_accuracy"]
            row["probe_retraction_prediction_layer"] = best["layer"]
    table = []
    for (model, target), row in sorted(rows.items(), key=lambda item: (item[0][0] != "base", item[0])):
        trained_on = None if model == "base" else model.removeprefix("finetuned_")
        best = truthfulness.get(model, {})
        table.append(
            {
                **row,
                "trained_on": trained_on,
                "distribution": "base" if trained_on is None else ("in" if trained_on == target else "out"),
                "probe_truthfulness_accuracy": best.get("accuracy"),
                "probe_truthfulness_layer": best.get("layer"),
            }
        )
    metrics = {
        f"{row['model']}.{row['evaluated_on']}.{name}": {"value": float(row[name]), "step": 0}
        for row in table
        for name in (*RETRACTION_METRICS, "probe_retraction_prediction_accuracy", "probe_truthfulness_accuracy")
        if row.get(name) is not None
    }
    for row in table:
        logger.info(
            "%s on %s (%s): recall %.3f, precision %.3f", row["model"], row["evaluated_on"], row["distribution"],
            row.get("retraction_recall", float("nan")), row.get("retraction_precision", float("nan")),
        )  # fmt: skip
    return table, metrics
