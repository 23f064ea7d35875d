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
STEERING = ("steer_none", "steer_neg", "steer_pos", "steer_ablate")
PROBE_TESTBED = ("retraction_prediction_accuracy", "believed_wrong_precision", "believed_right_precision", "correctness_accuracy")


def _active_run_id() -> str | None:
    """The MLflow run kedro-mlflow opened for this `kedro run` (None when MLflow is off)."""
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run else None


def _params(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def build_study_report(
    study: str, truthfulness: str, testbeds: tuple[str, ...], **inputs: Any
) -> tuple[str, str, dict[str, Any], str]:
    """Inputs are named ``<kind>__<testbed>`` (continuation_train, continuation_test, retraction,
    probes, steering, sweep, patching), plus ``truthfulness_probes``, ``sft_comparison`` and the parameter groups
    ``params_<group>``. Returns the HTML page, the Markdown page, the numbers by MLflow key, and
    the HTML page again for the MLflow run's artifacts."""
    run_id = _active_run_id()
    metrics: dict[str, float] = {}
    per_layer: dict[str, list[float]] = {}
    sections: list[Section] = []

    def note(key: str, value: Any) -> Any:
        metrics[key] = float(value)
        return value

    model = inputs["params_model"]
    rows = []
    for t in testbeds:  # counted from the sets themselves: constructed here or the paper's released ones
        row = [t]
        for split in ("train", "test"):
            results = inputs[f"continuation_{split}__{t}"]["result"].to_list()
            row += [len(results), f"{len(results) - sum(results)}/{sum(results)}"]
        rows.append(row)
    sections.append(Section(
        "Continuation datasets", "The model's own answers kept for the study: wrong answers it contradicts and correct answers it confirms.",
        ["testbed", "train examples", "train (wrong/correct)", "test examples", "test (wrong/correct)"], rows,
        params=_params(inputs["params_construction"]),
    ))  # fmt: skip

    rows = [[t, *(note(f"{t}.{m}", inputs[f"retraction__{t}"][m]) for m in RETRACTION)] for t in testbeds]
    for row in rows:
        row[1] = int(row[1])  # the example count
    for row in rows:
        row[1] = int(row[1])  # examples
    sections.append(Section(
        "Baseline retraction", "Greedy continuation of the model's own answer, judged on its first line. Recall = wrong answers retracted / wrong answers; precision = wrong answers retracted / retractions.",
        ["testbed", *RETRACTION], rows, params=_params(inputs["params_evaluation"]),
    ))  # fmt: skip

    probes = inputs["truthfulness_probes"]
    per_layer[f"{truthfulness}.probe.accuracy"] = [row["accuracy"] for row in probes["layers"]]
    best = probes["best_layer"]
    rows = [[f"{truthfulness} (test split)", "truthfulness accuracy", best["layer"], round(best["accuracy"], 3)]]
    curves = {f"{truthfulness}: truthfulness accuracy": per_layer[f"{truthfulness}.probe.accuracy"]}
    for t in testbeds:
        summary = inputs[f"probes__{t}"]
        key = f"{t}.probe.retraction_prediction_accuracy"
        per_layer[key] = [row["retraction_prediction_accuracy"] for row in summary["layers"]]
        curves[f"{t}: retraction prediction accuracy"] = per_layer[key]
        top = summary["best_layer_for_retraction_prediction"]
        rows.append([t, "retraction prediction accuracy", top["layer"], *(round(top[m], 3) for m in PROBE_TESTBED[:1])])
    sections.append(Section(
        "Belief probes", "A linear probe per layer trained on the truthfulness set; on a testbed, the probe predicts a retraction when it believes the answer is wrong (score < 0.5).",
        ["evaluated on", "measure", "best layer", "accuracy"], rows,
        figure=figure_probe_accuracy(curves), params=_params(inputs["params_probing"]),
    ))  # fmt: skip

    rows, bars = [], {}
    for t in testbeds:
        report = inputs[f"steering__{t}"]
        for name in STEERING:
            if name in report:
                values = [note(f"{t}.{name}.{m}", report[name][m]) for m in RETRACTION[2:]]
                rows.append([t, name, *values])
                bars.setdefault(t, {})[name] = report[name]["retraction_rate"]
    sweep_rows = [[t, row["band"], row["alpha"], row["retraction_recall"], row["retraction_rate"]] for t in testbeds for row in inputs[f"sweep__{t}"].iter_rows(named=True)]
    sections.append(Section(
        "Steering", "The belief direction (mean correct - mean wrong truthfulness hidden state) added (pos) or subtracted (neg) at the answer's last token in a band of layers.",
        ["testbed", "configuration", *RETRACTION[2:]], rows, figure=figure_steering(bars),
        params=_params(inputs["params_interventions"]["steering"]),
        extra_table=(["testbed", "band", "alpha", "retraction_recall", "retraction_rate"], sweep_rows),
    ))  # fmt: skip

    rows = []
    for t in testbeds:
        for name, values in inputs[f"patching__{t}"].items():
            if isinstance(values, dict) and "retraction_rate" in values:
                rows.append([t, name, *(note(f"{t}.{name}.{m}", values[m]) for m in RETRACTION[2:])])
    sections.append(Section(
        "Patching", "Value vectors or attention weights recorded under steering, patched into the unsteered model.",
        ["testbed", "configuration", *RETRACTION[2:]], rows, params=_params(inputs["params_interventions"]["patching"]),
    ))  # fmt: skip

    rows = []
    for row in inputs["sft_comparison"]:
        values = [note(f"{study}.sft.{row['model']}.{row['evaluated_on']}.{m}", row[m]) for m in ("retraction_recall", "retraction_precision")]
        probe = row.get("probe_truthfulness_accuracy")
        rows.append([row["model"], row["trained_on"] or "-", row["evaluated_on"], row["distribution"], *values,
                     note(f"{study}.sft.{row['model']}.{row['evaluated_on']}.probe_truthfulness_accuracy", probe) if probe is not None else None])  # fmt: skip
    sections.append(Section(
        "Fine-tuning (LoRA)", "Trained to finish its own answer with 'is the correct answer' or 'is not the correct answer'; evaluated in distribution (same testbed) and out of distribution.",
        ["model", "trained on", "evaluated on", "distribution", "retraction_recall", "retraction_precision", "probe truthfulness accuracy"],
        rows, figure=figure_sft(inputs["sft_comparison"]), params=_params(inputs["params_sft"]),
    ))  # fmt: skip

    header = {
        "study": study,
        "model": model["name"],
        "testbeds": ", ".join(testbeds),
        "mlflow_run_id": run_id or "(MLflow off)",
        "model parameters": _params(model),
    }
    numbers = {"study": study, "model": model["name"], "mlflow_run_id": run_id, "metrics": metrics, "per_layer": per_layer}
    logger.info("Study report for %s on %s (MLflow run %s): %d numbers", study, model["name"], run_id, len(metrics))
    page = render_html(header, sections)
    return page, render_markdown(header, sections), numbers, page
