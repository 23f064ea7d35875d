"""probing: probes trained on a study's truthfulness set, evaluated on each of its testbeds."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, EMBEDDED_TRUTHFULNESS, PAPER_TESTBEDS, PAPER_TRUTHFULNESS

from .nodes import evaluate_on_testbed, evaluate_on_truthfulness, summarize_testbed, summarize_truthfulness, train_belief_probes


def truthfulness_template() -> Pipeline:
    split_inputs = ["hidden_train", "index_train", "hidden_test", "index_test"]
    return Pipeline(
        [
            Node(train_belief_probes, [*split_inputs, "params:probing"], ["probes", "probe_training_metrics"], name="train_belief_probes"),
            Node(evaluate_on_truthfulness, ["probes", "hidden_test", "index_test"], "probe_metrics", name="evaluate_probes_on_truthfulness"),
            Node(summarize_truthfulness, "probe_metrics", ["probe_summary", "probe_metrics_by_layer"], name="summarize_probes_on_truthfulness"),
        ]
    )


def testbed_template(testbed: str, truthfulness: str, model_namespace: str | None = None) -> Pipeline:
    """Probes of ``truthfulness`` applied to ``testbed``; ``model_namespace`` (e.g. a fine-tuned
    model's) prefixes both, so the same template serves every model of the run."""
    prefix = f"{model_namespace}." if model_namespace else ""
    label = f"{testbed}, {model_namespace}" if model_namespace else testbed
    summarize = update_wrapper(partial(summarize_testbed, testbed=label), summarize_testbed)
    return Pipeline(
        [
            Node(evaluate_on_testbed, ["probes", "continuation_hidden_test", "judged_continuations_test"],
                 ["probe_metrics", "probe_scores_test"], name="evaluate_probes_on_testbed"),  # fmt: skip
            Node(summarize, ["probe_metrics", "truthfulness_probe_metrics"],
                 ["probe_summary", "probe_metrics_by_layer", "probe_accuracy_plot", "probe_accuracy_plot_mlflow"],
                 name="summarize_probes_on_testbed"),  # fmt: skip
        ],
        namespace=f"{prefix}{testbed}",
        inputs={"probes": f"{prefix}{truthfulness}.probes", "truthfulness_probe_metrics": f"{prefix}{truthfulness}.probe_metrics"},
    )


def study(truthfulness: str, testbeds: tuple[str, ...], model_namespace: str | None = None) -> Pipeline:
    prefix = f"{model_namespace}." if model_namespace else ""
    pipe = Pipeline(truthfulness_template(), namespace=f"{prefix}{truthfulness}", parameters={"params:probing": "params:probing"})
    return pipe + sum((testbed_template(t, truthfulness, model_namespace) for t in testbeds), Pipeline([]))


def create_pipeline(**kwargs) -> Pipeline:
    return study(EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return study(PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
