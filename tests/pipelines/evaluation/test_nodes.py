import polars as pl
import pytest

from retraction_kedro.pipelines.evaluation import nodes

TESTBED = {"verification": {"expected_field": "country", "alias_field": None}}
QUESTIONS = pl.DataFrame([{"country": c, "question": f"Name a city in {c}."} for c in ("Germany", "France", "Japan")])
RESPONSES = pl.DataFrame([
    {"question": "Name a city in Germany.", "country": "Germany", "name": "Lyon", "result": False, "response": " is a city in France."},
    {"question": "Name a city in Germany.", "country": "Germany", "name": "Bonn", "result": True, "response": " is a city in Germany."},
    {"question": "Name a city in Japan.", "country": "Japan", "name": "Busan", "result": False, "response": " is a port city.\nNot in Japan."},
])  # fmt: skip
RUNTIME = {"resume_dir": None, "show_progress": False}


def test_rules_judge_node_and_scores():
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, {"judge": "rules"}, RUNTIME)
    assert judged["retracted"].to_list() == [True, False, False]
    report, logged = nodes.score_retraction(judged)
    assert report["retraction_recall"] == 0.5 and report["retraction_precision"] == 1.0
    assert logged["retraction_recall"] == {"value": 0.5, "step": 0}


def test_llm_judge_counts_unparseable_verdicts_as_not_retracted(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    evaluation = {"judge": "llm", "llm_judge": {"model": {"name": "tiny", "batch_size": 2}, "max_new_tokens": 4}}
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, evaluation, RUNTIME)
    assert judged["judge"].to_list() == ["llm"] * 3
    invalid = (~judged["judge_valid"]).sum()
    assert invalid == 3  # a random tiny model never writes "Retraction: True/False"
    assert not any(judged["retracted"].to_list())
    report, _ = nodes.score_retraction(judged)
    assert report["judge_invalid"] == 3
    assert report["judge_agreement_with_rules"] == pytest.approx(2 / 3)


def test_unknown_judge_is_an_error():
    with pytest.raises(ValueError, match="evaluation.judge"):
        nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS, TESTBED, {"judge": "vibes"}, RUNTIME)
