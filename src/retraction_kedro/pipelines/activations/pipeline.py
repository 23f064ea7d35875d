"""activations: one template per testbed and one per truthfulness set, wrapped in namespaces."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, EMBEDDED_TRUTHFULNESS, PAPER_TESTBEDS, PAPER_TRUTHFULNESS

from .nodes import continuation_hidden_states, continue_answers, truthfulness_hidden_states

SHARED = {"params:activations": "params:activations", "params:model": "params:model", "params:runtime": "params:runtime"}
PARAMS = ["params:activations", "params:model", "params:runtime"]


def testbed_template() -> Pipeline:
    nodes = []
    for split in ("train", "test"):
        nodes += [
            Node(continue_answers, [f"continuation_{split}", *PARAMS], f"continuation_responses_{split}", name=f"continue_answers_{split}"),
            Node(continuation_hidden_states, [f"continuation_{split}", *PARAMS], f"continuation_hidden_{split}", name=f"continuation_hidden_states_{split}"),
        ]
    return Pipeline(nodes)


def truthfulness_template() -> Pipeline:
    return Pipeline(
        [
            Node(truthfulness_hidden_states, [f"questions_{split}", *PARAMS], [f"hidden_{split}", f"index_{split}"], name=f"truthfulness_hidden_states_{split}")
            for split in ("train", "test")
        ]
    )


def _study(truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    pipe = Pipeline(truthfulness_template(), namespace=truthfulness, parameters=SHARED)
    for testbed in testbeds:
        pipe += Pipeline(testbed_template(), namespace=testbed, parameters=SHARED)
    return pipe


def create_pipeline(**kwargs) -> Pipeline:
    return _study(EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _study(PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
