"""data_construction: each registered source, then one template per testbed, wrapped in its namespace."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import (
    build_continuation_sets,
    build_embedded_questions,
    build_embedded_truthfulness,
    describe_question_files,
    describe_truthfulness_files,
    fetch_paper_questions,
    question_file_shots,
    sample_answers,
    verify_answers,
)

QUESTIONS = ["free_questions_train", "free_questions_test"]


def testbed_template() -> Pipeline:
    """Free questions -> sampled answers -> verified answers -> continuation sets (one testbed)."""
    return Pipeline(
        [
            Node(
                sample_answers,
                [*QUESTIONS, "source_manifest", "params:testbed", "params:construction", "params:model", "params:runtime"],
                "answer_samples",
                name="sample_answers",
            ),
            Node(
                verify_answers,
                ["answer_samples", *QUESTIONS, "verification_shots", "params:testbed", "params:construction", "params:model",
                 "params:runtime"],  # fmt: skip
                "verified_answers",
                name="verify_answers",
            ),
            Node(
                build_continuation_sets,
                ["answer_samples", "verified_answers", *QUESTIONS, "params:testbed", "params:construction"],
                ["continuation_train", "continuation_val", "continuation_test", "construction_summary", "construction_metrics"],
                name="build_continuation_sets",
            ),
        ]
    )


def testbed_source(kind: str) -> Pipeline:
    """The free questions of a testbed and its worked verification examples, by source kind."""
    if kind == "embedded":
        return Pipeline(
            [Node(build_embedded_questions, ["params:world", "params:testbed"], [*QUESTIONS, "verification_shots", "source_manifest"],
                  name="build_embedded_questions")]  # fmt: skip
        )
    first = (
        Node(fetch_paper_questions, ["params:paper_data", "params:source"], "source_manifest", name="fetch_paper_questions")
        if kind == "paper"
        else Node(describe_question_files, [*QUESTIONS, "params:testbed"], "source_manifest", name="describe_question_files")
    )
    shots = Node(
        question_file_shots, ["free_questions_train", "source_manifest", "params:testbed", "params:construction"], "verification_shots",
        name="question_file_shots",
    )  # fmt: skip
    return Pipeline([first, shots])


def truthfulness_source(kind: str) -> Pipeline:
    if kind == "embedded":
        node = Node(build_embedded_truthfulness, ["params:world", "params:truthfulness"], ["questions_train", "questions_test", "source_manifest"],
                    name="build_embedded_truthfulness")  # fmt: skip
    elif kind == "paper":
        node = Node(fetch_paper_questions, ["params:paper_data", "params:source"], "source_manifest", name="fetch_paper_questions")
    else:
        node = Node(describe_truthfulness_files, ["questions_train", "questions_test"], "source_manifest", name="describe_truthfulness_files")
    return Pipeline([node])


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    pipe = Pipeline([])
    for name in study.truthfulness_sets:
        entry = f"params:truthfulness_sets.{name}"
        source = truthfulness_source(registry.truthfulness_sets[name].source.kind)
        pipe += in_namespace(source, name, parameters={"params:truthfulness": entry, "params:source": f"{entry}.source"})
    for name in study.testbeds:
        entry = f"params:testbeds.{name}"
        template = testbed_source(registry.testbeds[name].source.kind) + testbed_template()
        pipe += in_namespace(template, name, parameters={"params:testbed": entry, "params:source": f"{entry}.source"})
    return pipe
