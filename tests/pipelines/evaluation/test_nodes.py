import polars as pl
import pytest

from retraction_kedro.config import ParameterError
from retraction_kedro.pipelines import chat_models
from retraction_kedro.pipelines.evaluation import nodes
from tests.serving.conftest import scripted_server  # noqa: F401 (a fixture)
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


def test_local_judge_counts_unparseable_verdicts_as_not_retracted(tiny_lm, monkeypatch):
    monkeypatch.setattr(chat_models, "load_language_model", lambda params: tiny_lm)
    evaluation = {"judge": "local", "llm_judge": LLM_JUDGE}
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, evaluation, RUNTIME)
    assert judged["judge"].to_list() == ["local"] * 3
    invalid = (~judged["judge_valid"]).sum()
    assert invalid == 3  # a random tiny model never writes "Retraction: True/False"
    assert not any(judged["retracted"].to_list())
    report, logged = nodes.score_retraction(judged, EVIDENCE)
    assert report["judge_invalid"] == 3
    agreement = report["judge_agreement_with_rules"]
    assert agreement["agreement"]["value"] == pytest.approx(2 / 3) and agreement["examples"] == 3
    assert "judge_agreement_with_rules.kappa.n" in logged


def test_server_judge_counts_error_replies_and_unparseable_verdicts_as_invalid(scripted_server):
    scripted_server.script = [200, 400, 200]  # the scripted server echoes the case back: never a verdict
    server = {"base_url": scripted_server.base_url, "model": scripted_server.model, "max_retries": 0, "concurrency": 1}
    evaluation = {"judge": "server", "llm_judge": {**LLM_JUDGE, "server": server}}
    judged = nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS.head(0), TESTBED, evaluation, RUNTIME)
    assert judged["judge_error"].to_list() == [False, True, False] and not any(judged["judge_valid"])
    asked = scripted_server.chat_requests()
    assert len(asked) == 3 and asked[0]["max_tokens"] == LLM_JUDGE["max_new_tokens"]
    assert "Text after the answer: Lyon is a city in France." in asked[0]["messages"][-1]["content"]
    report, _ = nodes.score_retraction(judged, EVIDENCE)
    assert report["judge_invalid"] == 3 and report["judge_error_replies"] == 1


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"judge": "vibes", "llm_judge": LLM_JUDGE}, r"^Parameter evaluation.judge: Input should be 'rules', 'local' or 'server' \(got 'vibes'\)$"),
        ({"judge": "server", "llm_judge": LLM_JUDGE}, r"^Parameter evaluation: judge server needs llm_judge.server"),
        ({"judge": "server", "llm_judge": {**LLM_JUDGE, "server": {"base_url": "ftp://x", "model": "m"}}}, r"^Parameter evaluation.llm_judge.server: .*ftp://x"),
    ],
)
def test_a_judge_that_cannot_work_is_refused_in_one_line(evaluation, message):
    with pytest.raises(ParameterError, match=message) as error:
        nodes.judge_continuations(RESPONSES, QUESTIONS, QUESTIONS, TESTBED, evaluation, RUNTIME)
    assert "\n" not in str(error.value)


LABELLED = RESPONSES.with_columns(pl.Series("id", ["a", "b", "c"]), pl.Series("label", [True, False, True]))


def test_judge_validation_scores_the_judge_against_the_labels():
    """Rules verdicts [T, F, F] against labels [T, F, T] (the third row's denial is past the first line)."""
    report, logged = nodes.validate_judge(LABELLED, QUESTIONS, QUESTIONS.head(0), TESTBED, {"judge": "rules", "llm_judge": LLM_JUDGE}, RUNTIME, EVIDENCE)
    scores = report["against_labels"]
    assert (scores["both"], scores["reference_only"], scores["rater_only"], scores["neither"]) == (1, 1, 0, 1)
    assert scores["precision"]["value"] == 1.0 and scores["precision"]["n"] == 1
    assert scores["recall"]["value"] == 0.5 and scores["recall"]["n"] == 2
    assert scores["kappa"]["value"] == pytest.approx(0.4)  # p_o 2/3, p_e 1/3: (2/3 - 1/3) / (1 - 1/3)
    assert report["examples"] == 3 and report["labelled_retractions"] == 2 and "rules_against_labels" not in report
    assert report["rows"] == [{"id": "a", "label": True, "retracted": True}, {"id": "b", "label": False, "retracted": False},
                              {"id": "c", "label": True, "retracted": False}]  # fmt: skip
    assert logged["against_labels.kappa"]["value"] == pytest.approx(0.4) and logged["against_labels.recall.n"]["value"] == 2


def test_judge_validation_with_an_llm_judge_also_scores_the_rules_and_their_agreement(tiny_lm, monkeypatch):
    monkeypatch.setattr(chat_models, "load_language_model", lambda params: tiny_lm)
    report, _ = nodes.validate_judge(LABELLED, QUESTIONS, QUESTIONS.head(0), TESTBED, {"judge": "local", "llm_judge": LLM_JUDGE}, RUNTIME, EVIDENCE)
    assert report["judge"] == "local" and report["judge_invalid"] == 3  # never a verdict from a random model: none retracted
    assert report["against_labels"]["recall"]["value"] == 0.0 and report["rules_against_labels"]["recall"]["value"] == 0.5
    assert report["judge_against_rules"]["agreement"]["value"] == pytest.approx(2 / 3)


def test_an_empty_judge_validation_set_is_an_error():
    with pytest.raises(ValueError, match="judge-validation set"):
        nodes.validate_judge(LABELLED.head(0), QUESTIONS, QUESTIONS, TESTBED, {"judge": "rules", "llm_judge": LLM_JUDGE}, RUNTIME, EVIDENCE)
