"""evaluation: the retraction judge and retraction metrics, per testbed namespace."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.testbeds import EMBEDDED_TESTBEDS, PAPER_TESTBEDS

from .nodes import judge_continuations, score_retraction

SHARED = {"params:evaluation": "params:evaluation", "params:runtime": "params:runtime"}


def testbed_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                judge_continuations,
                ["continuation_responses_test", "free_questions_train", "free_questions_test", "params:testbed",
                 "params:evaluation", "params:runtime"],
                "judged_continuations_test",
                name="judge_continuations",
            ),  # fmt: skip
            Node(score_retraction, "judged_continuations_test", ["retraction_report", "retraction_metrics"], name="score_retraction"),
        ]
    )


def _for(testbeds: tuple[str, ...]) -> Pipeline:
    return sum((Pipeline(testbed_template(), namespace=t, parameters=SHARED) for t in testbeds), Pipeline([]))


def create_pipeline(**kwargs) -> Pipeline:
    return _for(EMBEDDED_TESTBEDS)


def create_paper_pipeline() -> Pipeline:
    return _for(PAPER_TESTBEDS)
