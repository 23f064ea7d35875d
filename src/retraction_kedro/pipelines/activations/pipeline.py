"""activations: one template per testbed and one per truthfulness set, wrapped in namespaces.

The templates read the model to run from a ``model_spec`` input rather than from
``params:model``, so the sft pipeline can reuse them on a fine-tuned model by mapping
that input; for the base model, each namespace derives it from ``params:model``.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.pipelines.model_selection import base_model_spec
from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, EMBEDDED_TRUTHFULNESS, PAPER_TESTBEDS, PAPER_TRUTHFULNESS

from .nodes import continuation_hidden_states, continue_answers, truthfulness_hidden_states

SHARED = {"params:activations": "params:activations", "params:runtime": "params:runtime"}
INPUTS = ["params:activations", "model_spec", "params:runtime"]


def testbed_template(splits: tuple[str, ...] = ("train", "test")) -> Pipeline:
    nodes = []
    for split in splits:
        nodes += [
            Node(continue_answers, [f"continuation_{split}", *INPUTS], f"continuation_responses_{split}", name=f"continue_answers_{split}"),
            Node(continuation_hidden_states, [f"continuation_{split}", *INPUTS], f"continuation_hidden_{split}", name=f"continuation_hidden_states_{split}"),
        ]
    return Pipeline(nodes)


def truthfulness_template() -> Pipeline:
    return Pipeline(
        [
            Node(truthfulness_hidden_states, [f"questions_{split}", *INPUTS], [f"hidden_{split}", f"index_{split}"], name=f"truthfulness_hidden_states_{split}")
            for split in ("train", "test")
        ]
    )


def _on_base_model(template: Pipeline, namespace: str) -> Pipeline:
    select = Node(base_model_spec, "params:model", "model_spec", name="base_model_spec")
    return Pipeline([template, Pipeline([select])], namespace=namespace, parameters={**SHARED, "params:model": "params:model"})


def _study(truthfulness: str, testbeds: tuple[str, ...]) -> Pipeline:
    pipe = _on_base_model(truthfulness_template(), truthfulness)
    for testbed in testbeds:
        pipe += _on_base_model(testbed_template(), testbed)
    return pipe


def create_pipeline(**kwargs) -> Pipeline:
    return _study(EMBEDDED_TRUTHFULNESS, EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _study(PAPER_TRUTHFULNESS, PAPER_TESTBEDS)
