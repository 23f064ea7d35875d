"""Matching rules of the embedded world (retraction_kedro.world.names)."""

from __future__ import annotations

import pytest

from retraction_kedro.world import mentions_any, name_matches, normalize_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Zürich", "zurich"),
        ("São Paulo", "sao paulo"),
        ("Łódź", "lodz"),
        ("MONTRÉAL", "montreal"),
        ("Guinea-Bissau", "guinea bissau"),
        ("Côte d'Ivoire", "cote d ivoire"),
        ("Trinidad & Tobago", "trinidad and tobago"),
        ("The Netherlands", "netherlands"),
        ("  the   Bahamas. ", "bahamas"),
        ("Paris.", "paris"),
        ("St. John's", "st john s"),
        ("", ""),
    ],
)
def test_normalize_name(raw, expected):
    assert normalize_name(raw) == expected


def test_normalize_keeps_inner_article_and_lone_the():
    assert normalize_name("Republic of the Congo") == "republic of the congo"
    assert normalize_name("The") == "the"


def test_name_matches_accents_case_and_alternates():
    valid = ["München", "Munich", "Monaco di Baviera"]
    assert name_matches("munich", valid)
    assert name_matches("MUNCHEN", valid)
    assert name_matches("Munich.", valid)
    assert not name_matches("Berlin", valid)
    assert not name_matches("Mun", valid)
    assert not name_matches("", valid)
    assert not name_matches("Munich", [])


def test_name_matches_generic_city_affix_only_on_candidate():
    assert name_matches("Panama City", ["Panamá"])
    assert name_matches("City of London", ["London"])
    assert name_matches("New York City", ["New York"])
    # The valid name is never shortened: "Mexico" is not "Mexico City".
    assert not name_matches("Mexico", ["Mexico City"])
    assert not name_matches("Kansas City", ["Kansas City, Missouri"])


def test_name_matches_rejects_wrong_city():
    assert not name_matches("Lyon", ["Paris", "Marseille"])
    assert not name_matches("Paris, Texas", ["Paris"])
    assert not name_matches("Niger", ["Nigeria"])


def test_mentions_whole_words():
    assert mentions_any("It is in France.", ["France"])
    assert mentions_any("FRANCE", ["France"])
    assert not mentions_any("It is in Nigeria.", ["Niger"])
    assert mentions_any("It is in Niger, not Nigeria.", ["Niger"])
    assert not mentions_any("Francesca", ["France"])
    assert mentions_any("It is in the Netherlands.", ["The Netherlands"])
    assert mentions_any("Ivory Coast (Côte d’Ivoire)", ["Cote d'Ivoire"])
    assert not mentions_any("", ["France"])
    assert not mentions_any("France", ["", "  "])


def test_mentions_plural_tolerance():
    assert mentions_any("They pay in US dollars.", ["Dollar"])
    assert mentions_any("The Cambodian riel.", ["Riels"])
    assert not mentions_any("They use the euro.", ["Dollar"])


def test_mentions_acronyms_case_sensitive():
    assert mentions_any("It is in the U.S.", ["United States", "US"])
    assert mentions_any("USA", ["USA"])
    assert not mentions_any("Let us think: it is in Canada.", ["US"])


def test_mentions_distractors():
    assert not mentions_any("It is in South Sudan.", ["Sudan"], distractors=["South Sudan"])
    assert mentions_any("It is in Sudan, not South Sudan.", ["Sudan"], distractors=["South Sudan"])
    assert not mentions_any("Equatorial Guinea", ["Guinea"], distractors=["Equatorial Guinea"])
    # A distractor equal to a valid name is ignored.
    assert mentions_any("Sudan", ["Sudan"], distractors=["Sudan"])
    assert not mentions_any(
        "The Democratic Republic of the Congo.",
        ["Republic of the Congo", "Congo"],
        distractors=["Democratic Republic of the Congo"],
    )
    assert not mentions_any("Belarusian rubles", ["Ruble"], distractors=["Belarusian ruble"])
