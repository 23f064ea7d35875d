import pytest

from retraction_kedro.pipelines.evaluation.well_formed import well_formed


@pytest.mark.parametrize(
    "text",
    [" is a city in Germany.", " is not in Germany, it is in France.", " uses the euro.\nanything after the first line", " São Paulo."],
)
def test_readable_continuations_are_well_formed(text):
    assert well_formed(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (" 123 456.", "no word of letters"),
        ("\nGermany is a country.", "the first line is empty"),
        (" 是一个城市。", "another script"),
        (" это город в Германии.", "another script"),
        (" is is is a city.", "a word three times in a row"),
        (" the city the city the city the city.", "fewer than half the words distinct"),
    ],
)
def test_broken_continuations_are_not(text, why):
    assert not well_formed(text), why
