import pytest

from retraction_kedro.pipelines.evaluation.llm_judge import judge_messages, parse_judgement


@pytest.mark.parametrize(
    "output, verdict",
    [
        ("The text rejects the answer.\nRetraction: True", True),
        ("It confirms the answer.\nRetraction: False", False),
        ("analysis\nretraction:   **false**", False),
        ("Retraction: True at first, but on reflection...\nRetraction: False", False),
        ("The answer is True to the question.", None),
        ("", None),
    ],
)
def test_parse_judgement(output, verdict):
    assert parse_judgement(output) is verdict


def test_judge_prompt_shows_the_answer_and_its_continuation():
    messages = judge_messages("Name a city in Germany.", "Lyon", " is a city in France.")
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    assert "Lyon is a city in France." in messages[-1]["content"]
    assert sum(m["role"] == "assistant" for m in messages) >= 4  # worked examples of both verdicts
