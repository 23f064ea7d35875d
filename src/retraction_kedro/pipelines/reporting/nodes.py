"""The study report: the paper's tables and figures for one run, as HTML and Markdown.

Every number shown is also returned under its MLflow metric key (``numbers``), so a
reader, or a test, can check the page against the MLflow run it names.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .render import Section, figure_probe_accuracy, figure_sft, figure_steering, render_html, render_markdown

logger = logging.getLogger(__name__)

RETRACTION = ("examples", "answer_accuracy", "retraction_recall", "retraction_precision", "retraction_rate")
RATES = RETRACTION[2:]
STEERING = ("steer_none", "steer_neg", "steer_pos", "steer_ablate")
PREDICTION = ("retraction_prediction_accuracy", "believed_wrong_precision", "believed_right_precision")


def _active_run_id() -> str | None:
    """The MLflow run kedro-mlflow opened for this `kedro run` (None when MLflow is off)."""
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run else None


def _params(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True, default=str)


class Numbers:
    """Every number a section shows, under the MLflow key it was logged with."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.per_layer: dict[str, list[float]] = {}

    def note(self, key: str, value: Any) -> Any:
        self.metrics[key] = float(value)
        return value


def _datasets(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:  # counted from the sets themselves: constructed here or the paper's released ones
        row = [t]
        for split in ("train", "test"):
            results = inputs[f"continuation_{split}__{t}"]["result"].to_list()
            row += [len(results), f"{len(results) - sum(results)}/{sum(results)}"]
        rows.append(row)
    return Section(
        "Continuation datasets", "The model's own answers kept for the study: wrong answers it contradicts and correct answers it confirms.",
        ["testbed", "train examples", "train (wrong/correct)", "test examples", "test (wrong/correct)"], rows,
        params=_params(inputs["params_construction"]),
    )  # fmt: skip


def _baseline(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:
        report = inputs[f"retraction__{t}"]
        rows.append([t, int(numbers.note(f"{t}.examples", report["examples"])), *(numbers.note(f"{t}.{m}", report[m]) for m in RETRACTION[1:])])
    return Section(
        "Baseline retraction", "Greedy continuation of the model's own answer, judged on its first line. Recall = wrong answers retracted / wrong answers; precision = wrong answers retracted / retractions.",
        ["testbed", *RETRACTION], rows, params=_params(inputs["params_evaluation"]),
    )  # fmt: skip


def _probes(truthfulness, testbeds, inputs, numbers) -> Section:
    probes = inputs["truthfulness_probes"]
    curves = {f"{truthfulness}: truthfulness accuracy": [row["accuracy"] for row in probes["layers"]]}
    numbers.per_layer[f"{truthfulness}.probe.accuracy"] = curves[f"{truthfulness}: truthfulness accuracy"]
    best = probes["best_layer"]
    rows = [[f"{truthfulness} (test split)", best["layer"], best["accuracy"], None, None]]
    for t in testbeds:
        summary = inputs[f"probes__{t}"]
        curve = [row["retraction_prediction_accuracy"] for row in summary["layers"]]
        numbers.per_layer[f"{t}.probe.retraction_prediction_accuracy"] = curves[f"{t}: retraction prediction accuracy"] = curve
        top = summary["best_layer_for_retraction_prediction"]
        rows.append([f"{t} (retraction prediction)", top["layer"], *(top[m] for m in PREDICTION)])
    return Section(
        "Belief probes", "A linear probe per layer trained on the truthfulness set. On a testbed the probe predicts a retraction when it believes the answer is wrong (score < 0.5); the precisions are those of 'believed wrong' and 'believed right'.",
        ["evaluated on", "best layer", "accuracy", "precision believed wrong", "precision believed right"], rows,
        figure=figure_probe_accuracy(curves), params=_params(inputs["params_probing"]),
    )  # fmt: skip


def _steering(testbeds, inputs, numbers) -> Section:
    rows, bars = [], {}
    for t in testbeds:
        report = inputs[f"steering__{t}"]
        for name in (n for n in STEERING if n in report):
            rows.append([t, name, *(numbers.note(f"{t}.{name}.{m}", report[name][m]) for m in RATES)])
            bars.setdefault(t, {})[name] = report[name]["retraction_rate"]
    sweep = [[t, row["band"], row["alpha"], row["retraction_recall"], row["retraction_rate"]] for t in testbeds for row in inputs[f"sweep__{t}"].iter_rows(named=True)]
    return Section(
        "Steering", "The belief direction (mean correct - mean wrong truthfulness hidden state) added (pos) or subtracted (neg) at the answer's last token in a band of layers.",
        ["testbed", "configuration", *RATES], rows, figure=figure_steering(bars),
        params=_params(inputs["params_interventions"]["steering"]),
        extra_table=(["testbed", "band", "alpha", "retraction_recall", "retraction_rate"], sweep),
    )  # fmt: skip


def _patching(testbeds, inputs, numbers) -> Section:
    rows = [
        [t, name, *(numbers.note(f"{t}.{name}.{m}", values[m]) for m in RATES)]
        for t in testbeds
        for name, values in inputs[f"patching__{t}"].items()
        if isinstance(values, dict) and "retraction_rate" in values
    ]
    return Section(
        "Patching", "Value vectors or attention weights recorded under steering, patched into the unsteered model.",
        ["testbed", "configuration", *RATES], rows, params=_params(inputs["params_interventions"]["patching"]),
    )  # fmt: skip


def _finetuning(study, inputs, numbers) -> Section:
    rows = []
    for row in inputs["sft_comparison"]:
        key = f"{study}.sft.{row['model']}.{row['evaluated_on']}"
        measures = ("retraction_recall", "retraction_precision", "probe_truthfulness_accuracy")
        values = [numbers.note(f"{key}.{m}", row[m]) if row.get(m) is not None else None for m in measures]
        rows.append([row["model"], row["trained_on"] or "-", row["evaluated_on"], row["distribution"], *values])
    return Section(
        "Fine-tuning (LoRA)", "Trained to finish its own answer with 'is the correct answer' or 'is not the correct answer'; evaluated in distribution (same testbed) and out of distribution.",
        ["model", "trained on", "evaluated on", "distribution", "retraction_recall", "retraction_precision", "probe truthfulness accuracy"],
        rows, figure=figure_sft(inputs["sft_comparison"]), params=_params(inputs["params_sft"]),
    )  # fmt: skip


def build_study_report(
    study: str, truthfulness: str, testbeds: tuple[str, ...], **inputs: Any
) -> tuple[str, str, dict[str, Any], str]:
    """Inputs are named ``<kind>__<testbed>`` (continuation_train, continuation_test, retraction,
    probes, steering, sweep, patching), plus ``truthfulness_probes``, ``sft_comparison`` and the
    parameter groups ``params_<group>``. Returns the HTML page, the Markdown page, the numbers by
    MLflow key, and the HTML page again for the MLflow run's artifacts."""
    run_id = _active_run_id()
    numbers = Numbers()
    sections = [
        _datasets(testbeds, inputs, numbers),
        _baseline(testbeds, inputs, numbers),
        _probes(truthfulness, testbeds, inputs, numbers),
        _steering(testbeds, inputs, numbers),
        _patching(testbeds, inputs, numbers),
        _finetuning(study, inputs, numbers),
    ]
    model = inputs["params_model"]
    header = {
        "study": study,
        "model": model["name"],
        "testbeds": ", ".join(testbeds),
        "mlflow_run_id": run_id or "(MLflow off)",
        "model parameters": _params(model),
    }
    logger.info("Study report for %s on %s (MLflow run %s): %d numbers", study, model["name"], run_id, len(numbers.metrics))
    page = render_html(header, sections)
    summary = {"study": study, "model": model["name"], "mlflow_run_id": run_id, "metrics": numbers.metrics, "per_layer": numbers.per_layer}
    return page, render_markdown(header, sections), summary, page
