"""interventions: steering directions per truthfulness set; steering and patching per testbed."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, EMBEDDED_TRUTHFULNESS, PAPER_TESTBEDS, PAPER_TRUTHFULNESS

from .nodes import patch_continuations, steer_continuations, steering_directions

SHARED = {f"params:{name}": f"params:{name}" for name in ("interventions", "evaluation", "model", "runtime")}
INPUTS = ["continuation_test", "steering_directions", "free_questions_train", "free_questions_test", "params:testbed",
          "params:evaluation", "params:interventions", "params:model", "params:runtime"]  # fmt: skip


def testbed_template(testbed: str, truthfulness: str) -> Pipeline:
    return Pipeline(
        [
            Node(steer_continuations, INPUTS,
                 ["steered_continuations", "steering_sweep", "steering_report", "steering_metrics", "steering_plot"],
                 name="steer_continuations"),  # fmt: skip
            Node(patch_continuations, INPUTS, ["patched_continuations", "patching_report", "patching_metrics"], name="patch_continuations"),
        ],
        namespace=testbed,
        inputs={"steering_directions": f"{truthfulness}.steering_directions"},
        parameters=SHARED,
    )


def _study(truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    directions = Pipeline(
        [Node(steering_directions, ["hidden_train", "index_train", "params:interventions"], "steering_directions", name="steering_directions")],
        namespace=truthfulness,
        parameters={"params:interventions": "params:interventions"},
    )
    return directions + sum((testbed_template(t, truthfulness) for t in testbeds), Pipeline([]))


def create_pipeline(**kwargs) -> Pipeline:
    return _study(EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _study(PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
