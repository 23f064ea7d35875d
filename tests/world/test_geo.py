"""Embedded offline world tables (retraction_kedro.world.geo)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from retraction_kedro.world import (
    SYSTEM_PROMPT,
    TESTBED_BUILDERS,
    TRUTHFULNESS_TAGS,
    city_questions,
    country_phrase,
    currency_questions,
    embedded_builder,
    mentions_any,
    name_matches,
    truthfulness_questions,
)
from retraction_kedro.world.geo import _COMPARISON_RATIO, _load_countries, well_known_cities, well_known_currencies

TABLES = ("geo_city_train", "geo_city_test", "geo_currency_train", "geo_currency_test", "truthfulness_train", "truthfulness_test")


def build_world(seed=0, min_city_population=100_000, min_answers=3, test_fraction=0.5, truthfulness_per_relation=400,
                truthfulness_relations=TRUTHFULNESS_TAGS):  # fmt: skip
    """The three builders' tables under one key each (the names the tests below use)."""
    tables = {}
    for prefix, (train, test) in (
        ("geo_city", city_questions(seed, min_city_population, min_answers, test_fraction)),
        ("geo_currency", currency_questions(seed, test_fraction)),
        ("truthfulness", truthfulness_questions(seed, test_fraction, truthfulness_per_relation, truthfulness_relations)),
    ):
        tables |= {f"{prefix}_train": train, f"{prefix}_test": test}
    return tables


@pytest.fixture(scope="module")
def world():
    return build_world()


def test_tables_present_and_non_empty(world):
    assert set(world) == set(TABLES)
    for name in TABLES:
        assert world[name], name


def _all(world, prefix):
    return world[f"{prefix}_train"] + world[f"{prefix}_test"]


def test_geo_city_rows(world):
    rows = _all(world, "geo_city")
    for row in rows:
        assert {"country_code", "country", "country_aliases", "question", "messages", "answers"} <= set(row)
        assert len(row["country_code"]) == 2
        assert row["question"].startswith("Name a city in ") and row["question"].endswith(".")
        assert row["messages"] == [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": row["question"]},
        ]
        assert len(row["answers"]) >= 3
        assert all(isinstance(a, str) and a for a in row["answers"])
        assert not any(a.isdigit() for a in row["answers"])
    codes = [r["country_code"] for r in rows]
    assert len(codes) == len(set(codes))
    by_code = {r["country_code"]: r for r in rows}
    fr = by_code["FR"]
    assert fr["country"] == "France"
    assert name_matches("Paris", fr["answers"])
    assert name_matches("Lyons", fr["answers"]) or name_matches("Lyon", fr["answers"])
    assert not name_matches("Berlin", fr["answers"])
    assert not name_matches("France", fr["answers"])
    de = by_code["DE"]
    assert name_matches("Munich", de["answers"]) and name_matches("München", de["answers"])  # alternate name
    assert not name_matches("Vienna", de["answers"])
    us = by_code["US"]
    assert {"USA", "United States of America"} <= set(us["country_aliases"])
    assert not any(len(a) == 3 and a.isupper() for a in us["country_aliases"] if a != "USA")  # no ISO3 codes


def test_geo_currency_rows(world):
    rows = _all(world, "geo_currency")
    for row in rows:
        assert {"currency_code", "currency", "question", "messages", "answers"} <= set(row)
        assert row["currency"] and row["answers"]
        assert row["question"] == f"Name a country that uses the {row['currency']}."
        assert row["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    by_name = {r["currency"]: r for r in rows}
    euro = by_name["Euro"]
    assert euro["currency_code"] == "EUR"
    assert name_matches("France", euro["answers"]) and name_matches("Germany", euro["answers"])
    assert not name_matches("Japan", euro["answers"])
    # One row per currency name, so "the Dollar" accepts every dollar country.
    assert name_matches("Canada", by_name["Dollar"]["answers"])
    assert name_matches("Australia", by_name["Dollar"]["answers"])


def test_country_names_are_mentioned_through_aliases_not_distractors(world):
    city = world["geo_city_train"][0]
    expected = [city["country"], *city["country_aliases"]]
    assert mentions_any(f"It is in {city['country']}.", expected, city["country_distractors"])


@pytest.mark.parametrize("count", [0, 2, 5])
def test_well_known_facts_come_in_the_asked_number_one_per_value(count):
    countries = {c.name: c for c in _load_countries().values()}
    cities = well_known_cities(0, count)
    assert len(cities) == count and len({country for _, country in cities}) == count
    assert all(country in countries for _, country in cities)
    currencies = well_known_currencies(0, count)
    assert len(currencies) == count and len({currency for _, currency in currencies}) == count
    by_phrase = {country_phrase(c.name): c for c in countries.values()}
    assert all(by_phrase[subject].currency == currency for subject, currency in currencies)
    assert well_known_cities(1, 5) != well_known_cities(0, 5)  # the seed picks the examples


def test_builders_are_known_by_name_and_an_unknown_name_is_refused():
    assert set(TESTBED_BUILDERS) == {"city_in_country", "country_by_currency"}
    with pytest.raises(ValueError, match=r"source.embedded 'city_in_town' is not an embedded testbed builder; choose one of"):
        embedded_builder("city_in_town")


def test_truthfulness_rows_balanced(world):
    for split in ("truthfulness_train", "truthfulness_test"):
        rows = world[split]
        assert [r["activations_index"] for r in rows] == list(range(len(rows)))
        for r in rows:
            assert r["label"] in (0, 1)
            assert r["answer"].endswith(".")
            assert r["messages"] == [
                {"role": "user", "content": r["question"]},
                {"role": "assistant", "content": r["answer"][:-1]},
            ]
        labels = Counter(r["label"] for r in rows)
        assert labels[0] == labels[1] > 0
        per_tag = Counter((r["tag"], r["label"]) for r in rows)
        for tag in {r["tag"] for r in rows}:
            assert per_tag[(tag, 0)] == per_tag[(tag, 1)] > 0
    rows = _all(world, "truthfulness")
    for tag, n in Counter(r["tag"] for r in rows).items():
        assert n <= 400, tag
    by_q = {}
    for r in rows:
        by_q.setdefault(r["question"], []).append(r)
    france = by_q["What is the capital of France?"]
    assert {(r["answer"], r["label"]) for r in france if r["label"] == 1} == {("Paris.", 1)}
    for group in by_q.values():  # the wrong answer never equals the right one
        assert len({r["answer"] for r in group}) == len(group)


def test_truthfulness_no_shared_questions_or_countries(world):
    train, test = world["truthfulness_train"], world["truthfulness_test"]
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert not {r["country_code"] for r in train} & {r["country_code"] for r in test}


def test_truthfulness_avoids_testbed_relations(world):
    rows = _all(world, "truthfulness")
    assert {r["tag"] for r in rows} == set(TRUTHFULNESS_TAGS)
    currencies = {r["currency"] for r in _all(world, "geo_currency")}
    for r in rows:
        q = r["question"].lower()
        assert "currency" not in q and not q.startswith("name a") and "which country is" not in q
        assert r["answer"][:-1] not in currencies


def test_truthfulness_comparisons_are_clear_cut(world):
    """The right answer of a comparison is the larger country by a wide margin; no country is in both splits."""
    countries = list(_load_countries().values())
    by_phrase = {country_phrase(c.name): c for c in countries}
    by_name = {c.name: c for c in countries}
    pattern = re.compile(r"^Which country (?:has more inhabitants|covers a larger area), (.+) or (.+)\?$")
    mentioned = {}
    for split in ("truthfulness_train", "truthfulness_test"):
        mentioned[split] = set()
        asked = Counter()
        for r in world[split]:
            if r["tag"] not in ("population", "area"):
                continue
            asked[r["question"]] += 1
            pair = [by_phrase[name] for name in pattern.match(r["question"]).groups()]
            mentioned[split].update(c.code for c in pair)
            chosen = by_name[r["answer"][:-1]]
            other = next(c for c in pair if c.code != chosen.code)
            big, small = (chosen, other) if r["label"] == 1 else (other, chosen)
            assert getattr(big, r["tag"]) >= _COMPARISON_RATIO * getattr(small, r["tag"]), r
        assert set(asked.values()) == {2}  # each comparison once with each answer
    assert not mentioned["truthfulness_train"] & mentioned["truthfulness_test"]


def test_truthfulness_answers_stay_in_their_split(world):
    """A country or capital that answers a row is never a question's country in the other split."""
    countries = _load_countries().values()
    owner = {c.name: c.code for c in countries} | {c.capital: c.code for c in countries if c.capital}
    anchors = {split: {r["country_code"] for r in world[split]} for split in ("truthfulness_train", "truthfulness_test")}
    for split, other in (("truthfulness_train", "truthfulness_test"), ("truthfulness_test", "truthfulness_train")):
        for r in world[split]:
            if r["tag"] == "continent" or (r["tag"] == "capital" and r["label"] == 1):
                continue  # continents are shared; a right capital is the question's own
            assert owner[r["answer"][:-1]] not in anchors[other], r


def test_truthfulness_relations_can_be_chosen():
    w = build_world(truthfulness_per_relation=40, truthfulness_relations=["capital", "population"])
    rows = w["truthfulness_train"] + w["truthfulness_test"]
    assert Counter(r["tag"] for r in rows) == {"capital": 40, "population": 40}


def test_determinism_and_seed():
    a = build_world(seed=0, truthfulness_per_relation=40)
    b = build_world(seed=0, truthfulness_per_relation=40)
    c = build_world(seed=1, truthfulness_per_relation=40)
    assert a == b
    assert {r["country_code"] for r in a["geo_city_test"]} != {r["country_code"] for r in c["geo_city_test"]}
    assert {r["currency"] for r in a["geo_currency_test"]} != {r["currency"] for r in c["geo_currency_test"]}
    assert [r["question"] for r in a["truthfulness_test"]] != [r["question"] for r in c["truthfulness_test"]]
    assert sum(len(a[t]) for t in ("truthfulness_train", "truthfulness_test")) <= len(TRUTHFULNESS_TAGS) * 40


def test_test_fraction_sizes():
    w = build_world(test_fraction=0.25, truthfulness_per_relation=40)
    n_train, n_test = len(w["geo_city_train"]), len(w["geo_city_test"])
    assert n_test == round((n_train + n_test) * 0.25)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"min_city_population": 10**9}, "min_city_population"),
        ({"min_answers": 10**6}, "min_answers"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"truthfulness_per_relation": 2}, "truthfulness_per_relation"),
        ({"min_answers": 0}, "min_answers"),
        ({"truthfulness_relations": ["capital", "gdp"]}, "truthfulness_relations"),
        ({"truthfulness_relations": []}, "truthfulness_relations"),
    ],
)
def test_impossible_parameters_raise(kwargs, param):
    with pytest.raises(ValueError, match=param):
        build_world(**kwargs)
