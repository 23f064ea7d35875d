"""Judge whether each continuation retracts its answer, and score retraction per testbed."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from retraction_kedro.lm import GenerationSettings, chat_prompt, generate_texts, load_language_model
from retraction_kedro.testbeds import constraint_values

from .llm_judge import judge_messages, parse_judgement
from .metrics import retraction_metrics
from .rules_judge import first_line, rules_judge

logger = logging.getLogger(__name__)


def judge_continuations(
    responses: pl.DataFrame,
    free_questions_train: pl.DataFrame,
    free_questions_test: pl.DataFrame,
    testbed: dict[str, Any],
    evaluation: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """Add ``retracted`` (and the judge's raw output) to every continuation."""
    rows = responses.to_dicts()
    verification = testbed["verification"]
    questions = free_questions_train.to_dicts() + free_questions_test.to_dicts()
    all_values = sorted({v for q in questions for v in constraint_values(q, verification)})
    judge = evaluation["judge"]
    rules = [
        rules_judge(row["response"], expected := constraint_values(row, verification),
                    [v for v in all_values if v not in expected])
        for row in rows
    ]  # fmt: skip
    if judge == "rules":
        for row, verdict in zip(rows, rules):
            row.update({"retracted": verdict, "judge": "rules", "judge_output": None, "judge_valid": True})
    elif judge == "llm":
        lm = load_language_model(evaluation["llm_judge"]["model"])
        prompts = [
            chat_prompt(lm.tokenizer, judge_messages(row["question"], row["name"], first_line(row["response"])))
            for row in rows
        ]
        settings = GenerationSettings(
            max_new_tokens=evaluation["llm_judge"]["max_new_tokens"], stop_at_newline=False,
            batch_size=evaluation["llm_judge"]["model"].get("batch_size", 16),
        )  # fmt: skip
        outputs = generate_texts(lm, prompts, settings, runtime.get("resume_dir"), "judge", runtime.get("show_progress", True))
        for row, output, rule in zip(rows, outputs, rules):
            verdict = parse_judgement(output)
            row.update({"retracted": bool(verdict), "judge": "llm", "judge_output": output, "judge_valid": verdict is not None,
                        "rules_retracted": rule})  # fmt: skip
    else:
        raise ValueError(f"evaluation.judge must be 'rules' or 'llm', got {judge!r}")
    return pl.DataFrame(rows, infer_schema_length=None)


def score_retraction(judged: pl.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics as a JSON report and as MLflow metrics (names prefixed by the testbed namespace)."""
    invalid = int((~judged["judge_valid"]).sum())
    metrics = retraction_metrics(judged["result"].to_list(), judged["retracted"].to_list(), invalid)
    if "rules_retracted" in judged.columns:
        agreement = (judged["rules_retracted"] == judged["retracted"]).mean()
        metrics["judge_agreement_with_rules"] = float(agreement)
    logger.info("Retraction: %s", {k: round(v, 3) for k, v in metrics.items()})
    return metrics, {name: {"value": value, "step": 0} for name, value in metrics.items()}
