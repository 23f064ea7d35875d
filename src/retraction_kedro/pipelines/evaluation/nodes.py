"""Judge whether each continuation retracts its answer, and score retraction per testbed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl

from retraction_kedro.config.parameters import EvaluationParameters, EvidenceParameters, RuntimeParameters, TestbedParameters
from retraction_kedro.evidence import agreement, clustered_proportion, flatten, paired_difference, proportion, retraction_differences, retraction_metrics
from retraction_kedro.pipelines.chat_models import ask

from .llm_judge import judge_messages, parse_judgement
from .rules_judge import first_line, rules_judge
from .well_formed import well_formed

logger = logging.getLogger(__name__)


def judge_continuations(
    responses: pl.DataFrame,
    free_questions_train: pl.DataFrame,
    free_questions_test: pl.DataFrame,
    testbed: dict[str, Any],
    evaluation: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """Add ``retracted`` (and the judge's raw output) and ``well_formed`` to every continuation (none: nothing to judge)."""
    if responses.is_empty():
        return responses
    rows = responses.to_dicts()
    for row in rows:
        row["well_formed"] = well_formed(row["response"])
    entry = TestbedParameters.parse(testbed, "testbed")
    settings, run = EvaluationParameters.parse(evaluation, "evaluation"), RuntimeParameters.parse(runtime, "runtime")
    questions = free_questions_train.to_dicts() + free_questions_test.to_dicts()
    all_values = sorted({v for q in questions for v in entry.constraint_values(q)})
    rules = [
        rules_judge(row["response"], expected := entry.constraint_values(row), [v for v in all_values if v not in expected])
        for row in rows
    ]
    if settings.judge == "rules":
        for row, verdict in zip(rows, rules):
            row.update({"retracted": verdict, "judge": "rules", "judge_output": None, "judge_valid": True, "judge_error": False})
    else:
        conversations = [judge_messages(row["question"], row["name"], first_line(row["response"])) for row in rows]
        replies = ask(conversations, settings.judge, settings.llm_judge, "evaluation.llm_judge", run, "judge", stop_at_newline=False)
        for row, reply, rule in zip(rows, replies, rules):
            verdict = parse_judgement(reply) if reply is not None else None
            row.update({"retracted": bool(verdict), "judge": settings.judge, "judge_output": reply, "judge_valid": verdict is not None,
                        "judge_error": reply is None, "rules_retracted": rule})  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)


def validate_judge(
    labelled: pl.DataFrame,
    free_questions_train: pl.DataFrame,
    free_questions_test: pl.DataFrame,
    testbed: dict[str, Any],
    evaluation: dict[str, Any],
    runtime: dict[str, Any],
    evidence: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configured judge, as the evaluation runs it, on continuations labelled by reading: precision,
    recall and Cohen's kappa against the labels. When an LLM judge runs, the rules judge is scored too,
    and the two judges' kappa is reported. ``rows`` keeps each verdict, so sets can be pooled."""
    settings = EvidenceParameters.parse(evidence, "evidence")
    options = {"seed": settings.seed, "resamples": settings.resamples}
    if labelled.height == 0:
        raise ValueError("the judge-validation set (testbeds.<name>.judge_validation) holds no rows")
    judged = judge_continuations(labelled, free_questions_train, free_questions_test, testbed, evaluation, runtime)
    labels, verdicts = judged["label"].to_list(), judged["retracted"].to_list()
    report: dict[str, Any] = {
        "judge": EvaluationParameters.parse(evaluation, "evaluation").judge,
        "examples": judged.height,
        "labelled_retractions": int(sum(labels)),
        "judge_invalid": int((~judged["judge_valid"]).sum()),
        "against_labels": agreement(labels, verdicts, **options),
    }
    if "rules_retracted" in judged.columns:
        report["rules_against_labels"] = agreement(labels, judged["rules_retracted"].to_list(), **options)
        report["judge_against_rules"] = agreement(judged["rules_retracted"].to_list(), verdicts, **options)
    scored = {k: v for k, v in report.items() if k != "judge"}
    report["rows"] = [{"id": row["id"], "label": row["label"], "retracted": row["retracted"]} for row in judged.select("id", "label", "retracted").to_dicts()]
    logger.info("Judge validation (%s judge, %d rows): %s", report["judge"], judged.height,
                {k: v["value"] for k, v in report["against_labels"].items() if isinstance(v, dict)})  # fmt: skip
    return report, mlflow_metrics(scored)


def judged_metrics(judged: pl.DataFrame) -> dict[str, Any]:
    """Retraction metrics with intervals, the judge's invalid verdicts, and the share of well-formed text."""
    metrics = retraction_metrics(judged["result"].to_list(), judged["retracted"].to_list(), int((~judged["judge_valid"]).sum()))
    errors = int(judged["judge_error"].sum()) if "judge_error" in judged.columns else 0
    return {**metrics, "judge_error_replies": errors, "well_formed": proportion(int(judged["well_formed"].sum()), judged.height)}


def compare_runs(treatment: pl.DataFrame, baseline: pl.DataFrame, evidence: EvidenceParameters) -> dict[str, Any]:
    """Retraction under a run, and its paired difference from a baseline run of the same examples (an
    intervention against the unsteered run, a fine-tuned model against the base): bootstrap interval
    and exact McNemar p-value, for recall (over the wrong answers), rate and the well-formed share."""
    if treatment["name"].to_list() != baseline["name"].to_list() or treatment["result"].to_list() != baseline["result"].to_list():
        raise ValueError("a paired comparison needs the same examples in the same order in both runs")
    options = {"seed": evidence.seed, "resamples": evidence.resamples}
    change = retraction_differences(treatment["result"].to_list(), baseline["retracted"].to_list(), treatment["retracted"].to_list(), **options)
    change["well_formed"] = paired_difference(baseline["well_formed"].to_list(), treatment["well_formed"].to_list(), **options)
    return {**judged_metrics(treatment), "change": change}


def mlflow_metrics(tree: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Estimates flattened to MLflow metrics (``<name>``, ``<name>.ci_low``, ...); undefined values are left out."""
    return {name: {"value": value, "step": 0} for name, value in flatten(tree, drop_undefined=True).items()}


def score_retraction(judged: pl.DataFrame, evidence: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics as a JSON report (undefined values null) and as MLflow metrics (names prefixed by the namespace)."""
    settings = EvidenceParameters.parse(evidence, "evidence")
    metrics = judged_metrics(judged)
    if "rules_retracted" in judged.columns:  # the LLM judge ran: how far it agrees with the rules
        metrics["judge_agreement_with_rules"] = agreement(
            judged["rules_retracted"].to_list(), judged["retracted"].to_list(), seed=settings.seed, resamples=settings.resamples
        )
    logger.info("Retraction: %s", {k: v["value"] for k, v in metrics.items() if isinstance(v, dict) and "value" in v})
    return metrics, mlflow_metrics(metrics)


def score_decoding(greedy: pl.DataFrame, sampled: pl.DataFrame, evidence: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Greedy against sampled retraction on the same test set: the sampled rates pool every seed, with
    an interval from resampling examples (the draws of one example are not independent); each seed
    on its own too."""
    settings = EvidenceParameters.parse(evidence, "evidence")
    report: dict[str, Any] = {"greedy": {m: v for m, v in judged_metrics(greedy).items() if m in ("retraction_recall", "retraction_rate")}}
    seeds = sorted(set(sampled["sample_seed"].to_list())) if sampled.height else []
    report["seeds"] = seeds
    if not seeds:
        return report, mlflow_metrics({"greedy": report["greedy"]})
    runs = [sampled.filter(pl.col("sample_seed") == seed) for seed in seeds]
    if any(run["name"].to_list() != greedy["name"].to_list() for run in runs):
        raise ValueError("sampled and greedy continuations do not hold the same examples in the same order")
    retracted = np.array([run["retracted"].to_list() for run in runs]).T  # [examples, seeds]
    wrong = ~np.array(greedy["result"].to_list(), dtype=bool)
    options = {"seed": settings.seed, "resamples": settings.resamples}
    report["sampled"] = {
        "retraction_recall": clustered_proportion(retracted[wrong], **options),
        "retraction_rate": clustered_proportion(retracted, **options),
        "well_formed": clustered_proportion(np.array([run["well_formed"].to_list() for run in runs]).T, **options),
    }
    report["per_seed"] = {str(seed): {m: v for m, v in judged_metrics(run).items() if m in ("retraction_recall", "retraction_rate")}
                          for seed, run in zip(seeds, runs)}  # fmt: skip
    return report, mlflow_metrics({k: v for k, v in report.items() if k != "seeds"})
