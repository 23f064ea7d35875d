"""sft: LoRA fine-tuning on each testbed's continuation train set, then the activations,
evaluation and probing templates run again on the fine-tuned model, under the namespace
``finetuned_<testbed>``: in distribution on the same testbed, out of distribution on the others."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.pipelines.activations import pipeline as activations
from retraction_kedro.pipelines.evaluation import pipeline as evaluation
from retraction_kedro.pipelines.probing import pipeline as probing
from retraction_kedro.pipelines.model_selection import finetuned_model_spec
from retraction_kedro.testbeds import (
    EMBEDDED_STUDY,
    EMBEDDED_TESTBEDS,
    EMBEDDED_TRUTHFULNESS,
    PAPER_STUDY,
    PAPER_TESTBEDS,
    PAPER_TRUTHFULNESS,
)

from .nodes import build_sft_examples, compare_with_base, fine_tune

SHARED = {f"params:{name}": f"params:{name}" for name in ("sft", "model", "runtime")}


def training_template() -> Pipeline:
    return Pipeline(
        [
            Node(build_sft_examples, ["continuation_train", "params:sft"], "sft_examples", name="build_sft_examples"),
            Node(fine_tune, ["sft_examples", "params:model", "params:sft", "params:runtime"], ["finetuned_model", "training_curve"], name="fine_tune"),
            Node(finetuned_model_spec, ["params:model", "finetuned_model"], "model_spec", name="finetuned_model_spec"),
        ]
    )


def finetuned_study(trained_on: str, truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    """Train on ``trained_on``; evaluate the fine-tuned model with the same templates as the base."""
    model = f"finetuned_{trained_on}"
    spec = {"model_spec": f"{model}.model_spec"}
    pipe = Pipeline(training_template(), namespace=model, inputs={"continuation_train": f"{trained_on}.continuation_train"}, parameters=SHARED)
    pipe += Pipeline(
        activations.truthfulness_template(),
        namespace=f"{model}.{truthfulness}",
        inputs={**spec, **{f"questions_{s}": f"{truthfulness}.questions_{s}" for s in ("train", "test")}},
        parameters=activations.SHARED,
    )
    for testbed in testbeds:
        pipe += Pipeline(
            activations.testbed_template(splits=("test",)),
            namespace=f"{model}.{testbed}",
            inputs={**spec, "continuation_test": f"{testbed}.continuation_test"},
            parameters=activations.SHARED,
        )
        pipe += Pipeline(
            evaluation.testbed_template(),
            namespace=f"{model}.{testbed}",
            inputs={f"free_questions_{s}": f"{testbed}.free_questions_{s}" for s in ("train", "test")},
            parameters={**evaluation.SHARED, "params:testbed": f"params:{testbed}.testbed"},
        )
    return pipe + probing.study(truthfulness, testbeds, model_namespace=model)


def comparison(study: str, truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    models = ["base", *(f"finetuned_{t}" for t in testbeds)]
    inputs = {}
    for model in models:
        prefix = "" if model == "base" else f"{model}."
        inputs[f"probes__{model}__{truthfulness}"] = f"{prefix}{truthfulness}.probe_summary"
        for testbed in testbeds:
            inputs[f"retraction__{model}__{testbed}"] = f"{prefix}{testbed}.retraction_report"
            inputs[f"prediction__{model}__{testbed}"] = f"{prefix}{testbed}.probe_summary"
    node = Node(compare_with_base, inputs, ["sft_comparison", "sft_comparison_metrics"], name="compare_with_base")
    # In the study's namespace, so the paper's study has its own table.
    return Pipeline([node], namespace=study, inputs={name: name for name in inputs.values()})


def _study(study: str, truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    pipe = sum((finetuned_study(t, truthfulness, testbeds) for t in testbeds), Pipeline([]))
    return pipe + comparison(study, truthfulness, testbeds)


def create_pipeline(**kwargs) -> Pipeline:
    return _study(EMBEDDED_STUDY, EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _study(PAPER_STUDY, PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
