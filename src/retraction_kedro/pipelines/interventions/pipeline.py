"""interventions: steering directions per truthfulness set; the sweep, the configured runs, their
judgement and summaries per testbed."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.evaluation.pipeline import JUDGE_INPUTS
from retraction_kedro.pipelines.evaluation.nodes import judge_continuations
from retraction_kedro.pipelines.figures import intervention_figure, steering_sweep_figure
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import (
    run_interventions,
    run_steering_sweep,
    run_steering_sweep_rest,
    steering_directions,
    summarize_interventions,
    summarize_steering_sweep,
)

SETTINGS = ["model_spec", "params:interventions", "params:activations", "params:runtime"]


def truthfulness_template() -> Pipeline:
    return Pipeline([Node(steering_directions, ["hidden_train", "index_train"], "steering_directions", name="steering_directions")])


def testbed_template() -> Pipeline:
    vectors = ["steering_directions", "probes"]
    return Pipeline(
        [
            Node(run_steering_sweep, ["continuation_train", "continuation_test", "continuation_responses_train", "continuation_responses_test",
                                      *vectors, *SETTINGS], "sweep_continuations", name="run_steering_sweep"),  # fmt: skip
            Node(judge_continuations, ["sweep_continuations", *JUDGE_INPUTS], "judged_sweep_continuations", name="judge_sweep_continuations"),
            Node(run_steering_sweep_rest, ["judged_sweep_continuations", "continuation_train", "continuation_test", *vectors, "model_spec",
                                           "params:interventions", "params:runtime", "params:evidence"], "sweep_continuations_rest",
                 name="run_steering_sweep_rest"),  # fmt: skip
            Node(judge_continuations, ["sweep_continuations_rest", *JUDGE_INPUTS], "judged_sweep_continuations_rest", name="judge_sweep_continuations_rest"),
            Node(summarize_steering_sweep, ["judged_sweep_continuations", "judged_sweep_continuations_rest", "params:interventions", "params:evidence"],
                 ["steering_sweep", "steering_choice"], name="summarize_steering_sweep"),  # fmt: skip
            Node(steering_sweep_figure, "steering_sweep", "steering_sweep_plot", name="plot_steering_sweep"),
            Node(run_interventions, ["continuation_test", *vectors, "steering_choice", "continuation_responses_test", *SETTINGS],
                 "intervention_continuations", name="run_interventions"),  # fmt: skip
            Node(judge_continuations, ["intervention_continuations", *JUDGE_INPUTS], "judged_intervention_continuations",
                 name="judge_intervention_continuations"),  # fmt: skip
            Node(summarize_interventions, ["judged_intervention_continuations", "params:interventions", "params:evidence"], ["intervention_report", "intervention_metrics"],
                 name="summarize_interventions"),  # fmt: skip
            Node(intervention_figure, "intervention_report", "intervention_plot", name="plot_interventions"),
        ]
    )


def study_pipeline(registry: Registry, study: Study, model_namespace: str | None = None) -> Pipeline:
    """Directions and runs of ``study``; under ``model_namespace`` (a fine-tuned model's) the model,
    its continuations and its directions are that model's, the continuation sets the base model's."""
    prefix = f"{model_namespace}." if model_namespace else ""
    pipe = sum((in_namespace(truthfulness_template(), f"{prefix}{name}") for name in study.truthfulness_sets), Pipeline([]))
    for name in study.testbeds:
        truthfulness = registry.testbeds[name].truthfulness
        inputs = {"steering_directions": f"{prefix}{truthfulness}.steering_directions", "probes": f"{prefix}{truthfulness}.probes"}
        if model_namespace:
            inputs |= {f"continuation_{split}": f"{name}.continuation_{split}" for split in ("train", "test")}
            inputs |= {f"free_questions_{split}": f"{name}.free_questions_{split}" for split in ("train", "test")}
            inputs["model_spec"] = f"{model_namespace}.model_spec"
        pipe += in_namespace(testbed_template(), f"{prefix}{name}", inputs=inputs, parameters={"params:testbed": f"params:testbeds.{name}"})
    return pipe


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    return study_pipeline(registry, study)
