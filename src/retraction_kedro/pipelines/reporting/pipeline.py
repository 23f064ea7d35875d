"""report: one HTML page (and its Markdown twin) per study, with its tables and figures."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import build_study_report

KINDS = {
    "continuation_train": "continuation_train",
    "continuation_test": "continuation_test",
    "retraction": "retraction_report",
    "decoding": "decoding_report",
    "probes": "probe_summary",
    "interventions": "intervention_report",
    "sweep": "steering_sweep",
    "steering_choice": "steering_choice",
}
PARAMETER_GROUPS = ("model", "construction", "activations", "evaluation", "probing", "interventions", "sft", "evidence")


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    inputs = {f"{kind}__{t}": f"{t}.{dataset}" for t in study.testbeds for kind, dataset in KINDS.items()}
    inputs |= {f"judge_validation__{t}": f"{t}.judge_validation_report" for t in study.testbeds if registry.testbeds[t].judge_validation}
    inputs |= {f"truthfulness_probes__{name}": f"{name}.probe_summary" for name in study.truthfulness_sets}
    if study.finetuned_models:
        inputs["sft_comparison"] = f"{study.namespace}.sft_comparison"
    inputs |= {f"params_{group}": f"params:{group}" for group in PARAMETER_GROUPS}
    inputs["params_study"] = f"params:studies.{study.name}"
    report = update_wrapper(
        partial(build_study_report, study=study.namespace, truthfulness_sets=study.truthfulness_sets, testbeds=study.testbeds), build_study_report
    )
    outputs = ["study_report_html", "study_report_markdown", "study_report_numbers", "study_report_mlflow"]
    node = Node(report, inputs, outputs, name="build_study_report")
    datasets = {v: v for v in inputs.values() if not v.startswith("params:")}
    return in_namespace(Pipeline([node]), study.namespace, inputs=datasets)
