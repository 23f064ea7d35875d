"""evaluation: the retraction judge and retraction metrics, per testbed namespace."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry, Study
from retraction_kedro.pipelines.namespaces import in_namespace

from .nodes import judge_continuations, score_decoding, score_retraction, validate_judge

JUDGE_INPUTS = ["free_questions_train", "free_questions_test", "params:testbed", "params:evaluation", "params:runtime"]


def testbed_template(judge_validation: bool = False, decoding: bool = True) -> Pipeline:
    """Per testbed; ``judge_validation``: the testbed has a labelled set to score the judge on;
    ``decoding``: sampled continuations exist, to compare with greedy."""
    validation = [
        Node(validate_judge, ["judge_validation_set", *JUDGE_INPUTS, "params:evidence"], ["judge_validation_report", "judge_validation_metrics"],
             name="validate_judge"),  # fmt: skip
    ]
    sampled = [
        Node(judge_continuations, ["continuation_samples_test", *JUDGE_INPUTS], "judged_samples_test", name="judge_sampled_continuations"),
        Node(score_decoding, ["judged_continuations_test", "judged_samples_test", "params:evidence"], ["decoding_report", "decoding_metrics"],
             name="score_decoding"),  # fmt: skip
    ]
    return Pipeline(
        [
            Node(judge_continuations, ["continuation_responses_test", *JUDGE_INPUTS], "judged_continuations_test", name="judge_continuations"),
            Node(score_retraction, ["judged_continuations_test", "params:evidence"], ["retraction_report", "retraction_metrics"], name="score_retraction"),
            *(sampled if decoding else []),
            *(validation if judge_validation else []),
        ]
    )


def create_pipeline(registry: Registry, study: Study) -> Pipeline:
    return sum(
        (
            in_namespace(testbed_template(registry.testbeds[name].judge_validation is not None), name,
                         parameters={"params:testbed": f"params:testbeds.{name}"})  # fmt: skip
            for name in study.testbeds
        ),
        Pipeline([]),
    )
