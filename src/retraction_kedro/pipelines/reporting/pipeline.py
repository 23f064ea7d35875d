"""report: one HTML page (and its Markdown twin) with the study's tables and figures."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import (
    EMBEDDED_STUDY,
    EMBEDDED_TESTBEDS,
    EMBEDDED_TRUTHFULNESS,
    PAPER_STUDY,
    PAPER_TESTBEDS,
    PAPER_TRUTHFULNESS,
)

from .nodes import build_study_report

KINDS = {
    "continuation_train": "continuation_train",
    "continuation_test": "continuation_test",
    "retraction": "retraction_report",
    "probes": "probe_summary",
    "steering": "steering_report",
    "sweep": "steering_sweep",
    "patching": "patching_report",
}
PARAMETER_GROUPS = ("model", "construction", "evaluation", "probing", "interventions", "sft")


def _study(study: str, truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    inputs = {f"{kind}__{t}": f"{t}.{dataset}" for t in testbeds for kind, dataset in KINDS.items()}
    inputs |= {"truthfulness_probes": f"{truthfulness}.probe_summary", "sft_comparison": f"{study}.sft_comparison"}
    inputs |= {f"params_{group}": f"params:{group}" for group in PARAMETER_GROUPS}
    report = update_wrapper(partial(build_study_report, study=study, truthfulness=truthfulness, testbeds=testbeds), build_study_report)
    node = Node(report, inputs, ["study_report_html", "study_report_markdown", "study_report_numbers", "study_report_mlflow"], name="build_study_report")
    datasets = [v for v in inputs.values() if not v.startswith("params:")]
    return Pipeline(
        [node],
        namespace=study,
        inputs={name: name for name in datasets},
        parameters={f"params:{group}": f"params:{group}" for group in PARAMETER_GROUPS},
    )


def create_pipeline(**kwargs) -> Pipeline:
    return _study(EMBEDDED_STUDY, EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _study(PAPER_STUDY, PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
