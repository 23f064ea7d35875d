"""sft: LoRA fine-tuning on each testbed's continuation train set (``finetune: true`` in the registry),
then the activations, evaluation and probing templates again on the fine-tuned model, under the
namespace ``finetuned_<testbed>``: in distribution on the same testbed, out of distribution on the
others (and the interventions templates too with the study's ``finetuned_interventions``)."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import FINETUNED_PREFIX, Registry, Study
from retraction_kedro.pipelines.activations import pipeline as activations
from retraction_kedro.pipelines.evaluation import pipeline as evaluation
from retraction_kedro.pipelines.interventions import pipeline as interventions
from retraction_kedro.pipelines.model_selection import finetuned_model_spec
from retraction_kedro.pipelines.namespaces import in_namespace
from retraction_kedro.pipelines.probing import pipeline as probing

from .nodes import build_sft_examples, compare_with_base, fine_tune


def training_template() -> Pipeline:
    return Pipeline(
        [
            Node(build_sft_examples, ["continuation_train", "params:sft"], "sft_examples", name="build_sft_examples"),
            Node(fine_tune, ["sft_examples", "params:model", "params:sft", "params:runtime"], ["finetuned_model", "training_curve"], name="fine_tune"),
            Node(finetuned_model_spec, ["params:model", "finetuned_model"], "model_spec", name="finetuned_model_spec"),
        ]
    )


def finetuned_study(registry: Registry, study: Study, model: str) -> Pipeline:
    """Train ``model`` (``finetuned_<testbed>``); evaluate it with the same templates as the base model."""
    trained_on = model.removeprefix(FINETUNED_PREFIX)
    spec = {"model_spec": f"{model}.model_spec"}
    pipe = in_namespace(training_template(), model, inputs={"continuation_train": f"{trained_on}.continuation_train"})
    for name in study.truthfulness_sets:
        questions = {f"questions_{s}": f"{name}.questions_{s}" for s in ("train", "test")}
        pipe += in_namespace(activations.truthfulness_template(), f"{model}.{name}", inputs={**spec, **questions, "source_manifest": f"{name}.source_manifest"})
    splits = ("train", "test") if study.parameters.finetuned_interventions else ("test",)
    for name in study.testbeds:
        sets = {f"continuation_{s}": f"{name}.continuation_{s}" for s in splits}
        # greedy only: decoding sensitivity is measured on the base model
        pipe += in_namespace(activations.testbed_template(splits=splits, sample=False), f"{model}.{name}", inputs={**spec, **sets})
        pipe += in_namespace(
            evaluation.testbed_template(decoding=False),
            f"{model}.{name}",
            inputs={f"free_questions_{s}": f"{name}.free_questions_{s}" for s in ("train", "test")},
            parameters={"params:testbed": f"params:testbeds.{name}"},
        )
    pipe += probing.study_pipeline(registry, study, model_namespace=model)
    if study.parameters.finetuned_interventions:
        pipe += interventions.study_pipeline(registry, study, model_namespace=model)
    return pipe


def comparison(registry: Registry, study: Study) -> Pipeline:
    models = ["base", *study.finetuned_models]
    inputs = {}
    for model in models:
        prefix = "" if model == "base" else f"{model}."
        for truthfulness in study.truthfulness_sets:
            inputs[f"probes__{model}__{truthfulness}"] = f"{prefix}{truthfulness}.probe_summary"
        for testbed in study.testbeds:
            inputs[f"judged__{model}__{testbed}"] = f"{prefix}{testbed}.judged_continuations_test"
            inputs[f"prediction__{model}__{testbed}"] = f"{prefix}{testbed}.probe_summary"
    compare = update_wrapper(partial(compare_with_base, {t: registry.testbeds[t].truthfulness for t in study.testbeds}), compare_with_base)
    node = Node(compare, {**inputs, "evidence": "params:evidence"}, ["sft_comparison", "sft_comparison_metrics"], name="compare_with_base")
    return in_namespace(Pipeline([node]), study.namespace, inputs={name: name for name in inputs.values()})


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    pipe = sum((finetuned_study(registry, study, model) for model in study.finetuned_models), Pipeline([]))
    return pipe + comparison(registry, study) if study.finetuned_models else pipe
