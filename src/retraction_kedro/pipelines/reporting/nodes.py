"""The study report: the paper's tables and figures for one run, as HTML and Markdown.

Every rate and accuracy is shown with its 95% interval and n (``retraction_kedro.evidence``), every
intervention and fine-tuned model with its paired change from its baseline and the McNemar p-value.
Every number shown is also returned under its MLflow metric key (``numbers``), so a reader, or a
test, can check the page against the MLflow run it names.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from retraction_kedro.evidence import agreement, flatten

from .render import Section, figure_interventions, figure_probe_accuracy, figure_sft, figure_sweep, render_html, render_markdown

logger = logging.getLogger(__name__)

RATES = ("retraction_recall", "retraction_precision", "retraction_rate")
RETRACTION = ("answer_accuracy", *RATES, "well_formed")
PREDICTION = ("retraction_prediction_accuracy", "retraction_auroc", "believed_wrong_precision", "believed_right_precision")


def _active_run_id() -> str | None:
    """The MLflow run kedro-mlflow opened for this `kedro run` (None when MLflow is off)."""
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run else None


def _params(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True, default=str)


class Numbers:
    """Every number a section shows, under the MLflow key it was logged with (an estimate's interval
    and n under ``<key>.ci_low``, ``<key>.ci_high``, ``<key>.n``); undefined values are left out, as in MLflow."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.per_layer: dict[str, list[float | None]] = {}

    def note(self, key: str, value: Any) -> Any:
        self.metrics |= {name: float(v) for name, v in flatten({key: value}, drop_undefined=True).items()}
        return value


def _datasets(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:  # counted from the sets themselves: constructed here or the paper's released ones
        row = [t]
        for split in ("train", "test"):
            results = inputs[f"continuation_{split}__{t}"]["result"].to_list()
            row += [len(results), len(results) - sum(results), sum(results)]
        rows.append(row)
    return Section(
        "Continuation datasets", "The model's own answers kept for the study: wrong answers it contradicts and correct answers it confirms. Retraction recall rests on the wrong answers, so their number is the n that matters.",
        ["testbed", "train examples", "train wrong", "train correct", "test examples", "test wrong", "test correct"], rows,
        params=_params(inputs["params_construction"]),
    )  # fmt: skip


def _baseline(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:
        report = inputs[f"retraction__{t}"]
        rows.append([t, report["examples"], *(numbers.note(f"{t}.{m}", report[m]) for m in RETRACTION), report["judge_invalid"]])
    return Section(
        "Baseline retraction", "Greedy continuation of the model's own answer, judged on its first line. Recall = wrong answers retracted / wrong answers; precision = wrong answers retracted / retractions (undefined when nothing is retracted); well-formed = readable text (evaluation/well_formed.py). 95% Wilson intervals; n below each value.",
        ["testbed", "examples", *RETRACTION, "judge invalid"], rows, params=_params(inputs["params_evaluation"]),
    )  # fmt: skip


def _decoding(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:
        report = inputs[f"decoding__{t}"]
        sampled = report.get("sampled")
        for metric in ("retraction_recall", "retraction_rate"):
            rows.append([t, metric, numbers.note(f"{t}.decoding.greedy.{metric}", report["greedy"][metric]),
                         numbers.note(f"{t}.decoding.sampled.{metric}", sampled[metric]) if sampled else "not sampled",
                         ", ".join(f"{seed}: {report['per_seed'][str(seed)][metric]['value']:.3f}" for seed in report["seeds"]) or "-"])  # fmt: skip
    sampling = inputs["params_activations"]["sampling"]
    return Section(
        "Decoding sensitivity", f"Greedy continuations (the paper's setting) against sampled ones (temperature {sampling['temperature']}, top-p {sampling['top_p']}, one run per seed) on the same test set. The sampled rate pools every seed; its interval resamples examples, since the draws of one example are not independent.",
        ["testbed", "measure", "greedy", "sampled (all seeds)", "per seed"], rows, params=_params(sampling),
    )  # fmt: skip


def _probes(truthfulness_sets, testbeds, inputs, numbers) -> Section:
    rows, curves = [], {}
    for name in truthfulness_sets:
        layers = inputs[f"truthfulness_probes__{name}"]["layers"]
        curves[f"{name}: truthfulness accuracy"] = [row["accuracy"] for row in layers]
        numbers.per_layer[f"{name}.probe.accuracy"] = [row["accuracy"]["value"] for row in layers]
        numbers.per_layer[f"{name}.probe.auroc"] = [row["auroc"]["value"] for row in layers]
        best = inputs[f"truthfulness_probes__{name}"]["best_layer"]
        rows.append([f"{name} (truthfulness test split)", best["layer"], best["accuracy"], best["auroc"], None, None])
    for t in testbeds:
        summary = inputs[f"probes__{t}"]
        curves[f"{t}: retraction prediction accuracy"] = [row["retraction_prediction_accuracy"] for row in summary["layers"]]
        for column in ("retraction_prediction_accuracy", "retraction_auroc", "correctness_auroc"):
            numbers.per_layer[f"{t}.probe.{column}"] = [row[column]["value"] for row in summary["layers"]]
        top = summary["best_layer_for_retraction_prediction"]
        rows.append([f"{t} (retraction prediction)", top["layer"], *(top[m] for m in PREDICTION)])
    return Section(
        "Belief probes", "A linear probe per layer trained on the truthfulness set. On a testbed the probe predicts a retraction when it believes the answer is wrong (score < 0.5); AUROC ranks examples by the probe's belief that the answer is wrong (bootstrap interval); the precisions are those of 'believed wrong' and 'believed right'. The best layer is chosen on these test numbers, so its value is optimistic.",
        ["evaluated on", "best layer", "accuracy", "AUROC", "precision believed wrong", "precision believed right"], rows,
        figure=figure_probe_accuracy(curves), params=_params(inputs["params_probing"]),
    )  # fmt: skip


def _interventions(testbeds, inputs, numbers) -> Section:
    rows, bars = [], {}
    for t in testbeds:
        for name, values in inputs[f"interventions__{t}"].items():
            change = values["change"]
            rows.append([
                t, name, values["kind"], values["relative_size"], numbers.note(f"{t}.{name}.retraction_recall", values["retraction_recall"]),
                numbers.note(f"{t}.{name}.retraction_rate", values["retraction_rate"]), numbers.note(f"{t}.{name}.well_formed", values["well_formed"]),
                numbers.note(f"{t}.{name}.change.retraction_recall", change["retraction_recall"]), change["retraction_recall"]["p_value"],
            ])  # fmt: skip
            bars.setdefault(t, {})[name] = values["retraction_rate"]
    return Section(
        "Interventions", "Each configuration on the test set, against the unsteered run of its suffix on the same examples: the change in recall is a paired difference (bootstrap interval) with the exact McNemar p-value. Steering adds (alpha > 0, toward 'correct') or subtracts the belief direction at the answer's last token in a band of layers; relative size = |added vector| / mean residual norm; patching writes value vectors or attention weights recorded under steering into the unsteered run.",
        ["testbed", "configuration", "kind", "relative size", "retraction_recall", "retraction_rate", "well_formed", "change in recall", "p (McNemar)"],
        rows, figure=figure_interventions(bars), params=_params(inputs["params_interventions"]["configurations"]),
    )  # fmt: skip


def _sweep(testbeds, inputs, numbers) -> Section:
    rows = []
    for t in testbeds:
        for row in inputs[f"sweep__{t}"].iter_rows(named=True):
            change = row.get("change") or {}
            rows.append([t, row["direction"], row["band"], row["alpha"], row["relative_size"], row["retraction_recall"], row["retraction_rate"],
                         row["well_formed"], (change.get("retraction_recall") or {}).get("p_value")])  # fmt: skip
    chosen = {t: inputs[f"steering_choice__{t}"] for t in testbeds}
    description = ("Dose-response: every band x signed alpha x direction on the sweep split (the test set is never used to choose). "
                   f"Chosen: {_params({t: c['setting'] for t, c in chosen.items()})}; rule: {next(iter(chosen.values()))['rule']}.")  # fmt: skip
    return Section(
        "Steering sweep", description,
        ["testbed", "direction", "band", "alpha", "relative size", "retraction_recall", "retraction_rate", "well_formed", "p (recall, McNemar)"],
        rows, figure=figure_sweep({t: inputs[f"sweep__{t}"] for t in testbeds}), params=_params(inputs["params_interventions"]["sweep"]),
    )  # fmt: skip


def _judge_validation(testbeds, inputs, numbers) -> Section:
    rows, pooled = [], []
    for t in testbeds:
        report = inputs[f"judge_validation__{t}"]
        pooled += report["rows"]
        scores = report["against_labels"]
        rows.append([t, report["judge"], report["examples"], report["labelled_retractions"],
                     *(numbers.note(f"{t}.judge_validation.against_labels.{m}", scores[m]) for m in ("precision", "recall", "kappa")),
                     numbers.note(f"{t}.judge_validation.judge_against_rules.kappa", report["judge_against_rules"]["kappa"]) if "judge_against_rules" in report else "-"])  # fmt: skip
    if len(rows) > 1:
        evidence = inputs["params_evidence"]
        scores = agreement([r["label"] for r in pooled], [r["retracted"] for r in pooled], seed=evidence["seed"], resamples=evidence["resamples"])
        rows.append(["all", rows[0][1], len(pooled), sum(r["label"] for r in pooled),
                     *(numbers.note(f"judge_validation.against_labels.{m}", scores[m]) for m in ("precision", "recall", "kappa")), "-"])  # fmt: skip
    return Section(
        "Judge validation", "The judge, run as in the evaluation, on real continuations of the embedded model labelled by reading (data/01_raw/judge_validation/README.md): its precision and recall of retractions against the labels (Wilson intervals) and Cohen's kappa (bootstrap interval). When an LLM judge runs, its kappa with the rules judge is shown too.",
        ["testbed", "judge", "examples", "labelled retractions", "precision", "recall", "kappa", "kappa with rules judge"], rows,
        params=_params(inputs["params_evaluation"]),
    )  # fmt: skip


def _finetuning(study, inputs, numbers) -> Section:
    rows = []
    for row in inputs["sft_comparison"]:
        key = f"{study}.sft.{row['model']}.{row['evaluated_on']}"
        change = (row.get("change") or {}).get("retraction_recall")
        rows.append([
            row["model"], row["trained_on"] or "-", row["evaluated_on"], row["distribution"],
            numbers.note(f"{key}.retraction_recall", row["retraction_recall"]), numbers.note(f"{key}.retraction_precision", row["retraction_precision"]),
            numbers.note(f"{key}.change.retraction_recall", change) if change else None, change["p_value"] if change else None,
            numbers.note(f"{key}.probe_truthfulness_accuracy", row["probe_truthfulness_accuracy"]),
        ])  # fmt: skip
    return Section(
        "Fine-tuning (LoRA)", "Trained to finish its own answer with 'is the correct answer' or 'is not the correct answer'; evaluated in distribution (same testbed) and out of distribution, against the base model on the same test examples (paired difference, exact McNemar p).",
        ["model", "trained on", "evaluated on", "distribution", "retraction_recall", "retraction_precision", "change in recall", "p (McNemar)",
         "probe truthfulness accuracy"],
        rows, figure=figure_sft(inputs["sft_comparison"]), params=_params(inputs["params_sft"]),
    )  # fmt: skip


def build_study_report(
    study: str, truthfulness_sets: tuple[str, ...], testbeds: tuple[str, ...], **inputs: Any
) -> tuple[str, str, dict[str, Any], str]:
    """Inputs are named ``<kind>__<testbed>`` (continuation_train, continuation_test, retraction,
    decoding, probes, interventions, sweep, steering_choice, and judge_validation where the testbed has a
    labelled set), ``truthfulness_probes__<set>``, ``sft_comparison``
    (when the study fine-tunes) and the parameter groups ``params_<group>``. Returns the HTML page,
    the Markdown page, the numbers by MLflow key, and the HTML page again for the MLflow run."""
    run_id = _active_run_id()
    numbers = Numbers()
    sections = [
        _datasets(testbeds, inputs, numbers),
        _baseline(testbeds, inputs, numbers),
        _decoding(testbeds, inputs, numbers),
        _probes(truthfulness_sets, testbeds, inputs, numbers),
        _sweep(testbeds, inputs, numbers),
        _interventions(testbeds, inputs, numbers),
    ]
    validated = tuple(t for t in testbeds if f"judge_validation__{t}" in inputs)
    if validated:
        sections.insert(2, _judge_validation(validated, inputs, numbers))
    if "sft_comparison" in inputs:
        sections.append(_finetuning(study, inputs, numbers))
    model = inputs["params_model"]
    header = {
        "study": study,
        "model": model["name"],
        "testbeds": ", ".join(testbeds),
        "mlflow_run_id": run_id or "(MLflow off)",
        "model parameters": _params(model),
        "study parameters": _params(inputs["params_study"]),
        "intervals": _params(inputs["params_evidence"]),
    }
    logger.info("Study report for %s on %s (MLflow run %s): %d numbers", study, model["name"], run_id, len(numbers.metrics))
    page = render_html(header, sections)
    summary = {"study": study, "model": model["name"], "mlflow_run_id": run_id, "metrics": numbers.metrics, "per_layer": numbers.per_layer}
    return page, render_markdown(header, sections), summary, page
