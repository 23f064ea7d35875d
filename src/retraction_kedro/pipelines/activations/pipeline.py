"""activations: one template per testbed and one per truthfulness set, wrapped in namespaces.

The templates read the model to run from a ``model_spec`` input rather than from ``params:model``,
so the sft pipeline reuses them on a fine-tuned model by mapping that input; for the base model,
each namespace writes its own ``model_spec`` from ``params:model`` (persisted, so any stage can
rerun alone).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.model_selection import base_model_spec
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import continuation_hidden_states, continue_answers, sample_continuations, truthfulness_hidden_states

SETTINGS = ["params:activations", "model_spec", "params:runtime"]


def testbed_template(splits: tuple[str, ...] = ("train", "test"), sample: bool = True) -> Pipeline:
    """``sample``: the test set sampled beside greedy (decoding sensitivity; the base model's question)."""
    nodes = []
    for split in splits:
        nodes += [
            Node(continue_answers, [f"continuation_{split}", *SETTINGS], f"continuation_responses_{split}", name=f"continue_answers_{split}"),
            Node(continuation_hidden_states, [f"continuation_{split}", *SETTINGS], f"continuation_hidden_{split}",
                 name=f"continuation_hidden_states_{split}"),  # fmt: skip
        ]
    if sample and "test" in splits:
        nodes.append(Node(sample_continuations, ["continuation_test", *SETTINGS], "continuation_samples_test", name="sample_continuations_test"))
    return Pipeline(nodes)


def truthfulness_template() -> Pipeline:
    return Pipeline(
        [
            Node(truthfulness_hidden_states, [f"questions_{split}", "source_manifest", *SETTINGS], [f"hidden_{split}", f"index_{split}"],
                 name=f"truthfulness_hidden_states_{split}")  # fmt: skip
            for split in ("train", "test")
        ]
    )


def on_base_model(template: Pipeline, namespace: str) -> Pipeline:
    select = Pipeline([Node(base_model_spec, "params:model", "model_spec", name="base_model_spec")])
    return in_namespace(template + select, namespace)


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    pipe = sum((on_base_model(truthfulness_template(), name) for name in study.truthfulness_sets), Pipeline([]))
    return pipe + sum((on_base_model(testbed_template(), name) for name in study.testbeds), Pipeline([]))
