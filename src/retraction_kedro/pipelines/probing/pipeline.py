"""probing: probes trained on each truthfulness set, evaluated on the testbeds paired with it."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import evaluate_on_testbed, evaluate_on_truthfulness, summarize_testbed, summarize_truthfulness, train_belief_probes


def truthfulness_template() -> Pipeline:
    split_inputs = ["hidden_train", "index_train", "hidden_test", "index_test"]
    return Pipeline(
        [
            Node(train_belief_probes, [*split_inputs, "params:probing"], ["probes", "probe_training_metrics"], name="train_belief_probes"),
            Node(evaluate_on_truthfulness, ["probes", "hidden_test", "index_test", "params:evidence"], "probe_metrics", name="evaluate_probes_on_truthfulness"),
            Node(summarize_truthfulness, "probe_metrics", ["probe_summary", "probe_metrics_by_layer"], name="summarize_probes_on_truthfulness"),
        ]
    )


def testbed_template(label: str) -> Pipeline:
    summarize = update_wrapper(partial(summarize_testbed, testbed=label), summarize_testbed)
    return Pipeline(
        [
            Node(evaluate_on_testbed, ["probes", "continuation_hidden_test", "judged_continuations_test", "params:evidence"],
                 ["probe_metrics", "probe_scores_test"], name="evaluate_probes_on_testbed"),  # fmt: skip
            Node(summarize, ["probe_metrics", "truthfulness_probe_metrics"],
                 ["probe_summary", "probe_metrics_by_layer", "probe_accuracy_plot", "probe_accuracy_plot_mlflow"],
                 name="summarize_probes_on_testbed"),  # fmt: skip
        ]
    )


def study_pipeline(registry: Registry, study: Study, model_namespace: str | None = None) -> Pipeline:
    """Probes of every truthfulness set of ``study``, applied to its testbeds; ``model_namespace``
    (a fine-tuned model's) prefixes both, so the same templates serve every model of the run."""
    prefix = f"{model_namespace}." if model_namespace else ""
    pipe = sum((in_namespace(truthfulness_template(), f"{prefix}{name}") for name in study.truthfulness_sets), Pipeline([]))
    for name in study.testbeds:
        truthfulness = registry.testbeds[name].truthfulness
        label = f"{name}, {model_namespace}" if model_namespace else name
        pipe += in_namespace(
            testbed_template(label),
            f"{prefix}{name}",
            inputs={"probes": f"{prefix}{truthfulness}.probes", "truthfulness_probe_metrics": f"{prefix}{truthfulness}.probe_metrics"},
        )
    return pipe


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    return study_pipeline(registry, study)
