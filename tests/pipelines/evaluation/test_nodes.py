import polars as pl
import pytest

from retraction_kedro.config import ParameterError
from retraction_kedro.pipelines.evaluation import nodes
from tests.conftest import make_testbed

TESTBED = make_testbed()
LLM_JUDGE = {"model": {"name": "tiny", "batch_size": 2}, "max_new_tokens": 4}
QUESTIONS = pl.DataFrame([{"country": c, "question": f"Name a city in {c}."} for c in ("Germany", "France", "Japan")])
RESPONSES = pl.DataFrame([
    {"question": "Name a city in Germany.", "country": "Germany", "name": "Lyon", "result": False, "response": " is a city in France."},
    {"question": "Name a city in Germany.", "country": "Germany", "name": "Bonn", "result": True, "response": " is a city in Germany."},
    {"question": "Name a city in Japan.", "country": "Japan", "name": "Busan", "result": False, "response": " is a port city.\nNot in Japan."},
])  # fmt: skip
RUNTIME = {"resume_dir": None, "show_progress": False}
EVIDENCE = {"seed": 0, "resamples": 200}


def test_rules_judge_node_and_scores():
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, {"judge": "rules", "llm_judge": LLM_JUDGE}, RUNTIME)
    assert judged["retracted"].to_list() == [True, False, False]
    assert judged["well_formed"].to_list() == [True, True, True]
    report, logged = nodes.score_retraction(judged, EVIDENCE)
    assert report["retraction_recall"]["value"] == 0.5 and report["retraction_recall"]["n"] == 2
    assert report["retraction_precision"]["value"] == 1.0 and report["retraction_precision"]["n"] == 1
    assert logged["retraction_recall"] == {"value": 0.5, "step": 0} and logged["retraction_recall.n"] == {"value": 2, "step": 0}
    assert 0.0 < logged["retraction_recall.ci_low"]["value"] < 0.5 < logged["retraction_recall.ci_high"]["value"] < 1.0


def test_an_undefined_precision_is_null_in_the_report_and_absent_from_mlflow():
    judged = nodes.judge_continuations(RESPONSES.head(2).tail(1), QUESTIONS, QUESTIONS.head(0), TESTBED, {"judge": "rules", "llm_judge": LLM_JUDGE}, RUNTIME)
    report, logged = nodes.score_retraction(judged, EVIDENCE)
    assert report["retraction_precision"] == {"value": None, "n": 0, "ci_low": None, "ci_high": None, "k": 0}
    assert "retraction_precision" not in logged and "retraction_precision.ci_low" not in logged
    assert logged["retraction_precision.n"] == {"value": 0, "step": 0}


def test_llm_judge_counts_unparseable_verdicts_as_not_retracted(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    evaluation = {"judge": "llm", "llm_judge": LLM_JUDGE}
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, evaluation, RUNTIME)
    assert judged["judge"].to_list() == ["llm"] * 3
    invalid = (~judged["judge_valid"]).sum()
    assert invalid == 3  # a random tiny model never writes "Retraction: True/False"
    assert not any(judged["retracted"].to_list())
    report, logged = nodes.score_retraction(judged, EVIDENCE)
    assert report["judge_invalid"] == 3
    agreement = report["judge_agreement_with_rules"]
    assert agreement["agreement"]["value"] == pytest.approx(2 / 3) and agreement["examples"] == 3
    assert "judge_agreement_with_rules.kappa.n" in logged


def test_unknown_judge_is_an_error():
    with pytest.raises(ParameterError, match=r"^Parameter evaluation.judge: Input should be 'rules' or 'llm' \(got 'vibes'\)$"):
        nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS, TESTBED, {"judge": "vibes", "llm_judge": LLM_JUDGE}, RUNTIME)
