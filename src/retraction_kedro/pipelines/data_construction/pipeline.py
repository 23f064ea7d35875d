"""data_construction: one template pipeline, wrapped once per testbed namespace."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, PAPER_TESTBEDS

from .nodes import (
    build_continuation_sets,
    build_world_tables,
    fetch_paper_data,
    sample_answers,
    verification_shots,
    verify_answers,
)

SHARED_PARAMETERS = {"params:construction", "params:model", "params:runtime"}


def testbed_template() -> Pipeline:
    """Free questions -> sampled answers -> verified answers -> continuation sets (one testbed)."""
    questions = ["free_questions_train", "free_questions_test"]
    return Pipeline(
        [
            Node(
                sample_answers,
                [*questions, "source_manifest", "params:testbed", "params:construction", "params:model", "params:runtime"],
                "answer_samples",
                name="sample_answers",
            ),
            Node(
                verify_answers,
                ["answer_samples", *questions, "verification_shots", "params:testbed", "params:construction", "params:model",
                 "params:runtime"],  # fmt: skip
                "verified_answers",
                name="verify_answers",
            ),
            Node(
                build_continuation_sets,
                ["answer_samples", "verified_answers", *questions, "params:testbed", "params:construction"],
                ["continuation_train", "continuation_val", "continuation_test", "construction_summary", "construction_metrics"],
                name="build_continuation_sets",
            ),
        ]
    )


def for_testbed(testbed: str, manifest: str) -> Pipeline:
    return Pipeline(
        testbed_template(),
        namespace=testbed,
        inputs={"source_manifest": manifest},
        parameters={name: name for name in SHARED_PARAMETERS},
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The embedded testbeds (offline default)."""
    world = Pipeline(
        [
            Node(
                build_world_tables,
                ["params:world", "params:geo_city.testbed", "params:geo_currency.testbed"],
                [
                    "geo_city.free_questions_train", "geo_city.free_questions_test",
                    "geo_currency.free_questions_train", "geo_currency.free_questions_test",
                    "geo_truthfulness.questions_train", "geo_truthfulness.questions_test",
                    "geo_city.verification_shots", "geo_currency.verification_shots", "embedded_world_manifest",
                ],  # fmt: skip
                name="build_embedded_world",
            )
        ]
    )
    return world + sum((for_testbed(t, "embedded_world_manifest") for t in EMBEDDED_TESTBEDS), Pipeline([]))


def create_paper_pipeline() -> Pipeline:
    """The paper's WIKIDATA and CELEBRITY question sets, fetched into data/01_raw/paper."""
    fetch = Pipeline([Node(fetch_paper_data, "params:paper_data", "paper_data_manifest", name="fetch_paper_data")])
    shots = Pipeline(
        [Node(verification_shots, ["free_questions_train", "params:testbed", "params:construction"], "verification_shots",
              name="verification_shots")]  # fmt: skip
    )
    return fetch + sum(
        (Pipeline(shots, namespace=t, parameters={"params:construction": "params:construction"}) + for_testbed(t, "paper_data_manifest")
         for t in PAPER_TESTBEDS),
        Pipeline([]),
    )  # fmt: skip
