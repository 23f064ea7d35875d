"""The rules judge on a hand-labelled fixture: real continuations of the embedded model plus written cases.

Labels follow the paper's protocol: only the first line of a continuation is judged.
"""

import json
from pathlib import Path

import pytest

from retraction_kedro.pipelines.evaluation.rules_judge import has_retraction_cue, names_contradicting_value, rules_judge
from retraction_kedro.world import city_questions, currency_questions

FIXTURE = Path(__file__).parent / "fixtures" / "judge_fixture.jsonl"
FIELDS = {"geo_city": "country", "geo_currency": "currency"}


@pytest.fixture(scope="module")
def constraint_values():
    tables = {"geo_city": city_questions(), "geo_currency": currency_questions()}
    return {testbed: sorted({row[field] for split in tables[testbed] for row in split}) for testbed, field in FIELDS.items()}


def test_fixture_is_large_enough_and_has_both_classes():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    assert len(rows) >= 60
    assert {r["retracted"] for r in rows} == {True, False}
    assert any(r["source"].startswith("SmolLM2") for r in rows)


def test_rules_judge_accuracy_on_the_fixture(constraint_values):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    wrong = []
    for row in rows:
        others = [v for v in constraint_values[row["testbed"]] if v != row["expected"]]
        if rules_judge(row["continuation"], [row["expected"]], others) != row["retracted"]:
            wrong.append(row)
    accuracy = 1 - len(wrong) / len(rows)
    print(f"rules judge accuracy on {len(rows)} hand-labelled continuations: {accuracy:.3f}")
    for row in wrong:
        print("  misjudged:", row["name"], repr(row["continuation"]), "labelled", row["retracted"])
    assert accuracy >= 0.85


def test_cues_and_their_qualifiers():
    assert has_retraction_cue(" is actually in France.")
    assert has_retraction_cue(" isn't a German city.")
    assert not has_retraction_cue(" is not only the capital but also the largest city.")
    assert not has_retraction_cue(" is a city.\nActually it is not.")  # first line only


def test_contradicting_value_needs_another_value_and_not_the_question_s_own():
    assert names_contradicting_value(" is in France.", ["Germany"], ["France", "Italy"])
    assert not names_contradicting_value(" is in Germany near France.", ["Germany"], ["France"])
    assert not names_contradicting_value(" is in South Sudan.", ["South Sudan"], ["Sudan"])
