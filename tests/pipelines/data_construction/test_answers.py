import pytest

from retraction_kedro.pipelines.data_construction.answers import extract_answer


@pytest.mark.parametrize(
    "response, expected",
    [
        ("**Berlin** is a city in Germany.", ("Berlin", "ok")),
        ("Sure! One city in Kenya is Nairobi.", ("Nairobi", "ok")),
        ("In Chad, one of the most iconic cities is Djibouti. Located west", ("Djibouti", "ok")),
        ("The capital of Thailand, Bangkok, is a vibrant city.", ("Bangkok", "ok")),
        ("St. Louis is in Missouri.", ("St. Louis", "ok")),
        ("Rio de Janeiro, Brazil", ("Rio de Janeiro", "ok")),
        ("1. Lagos\n2. Abuja", ("Lagos", "ok")),
        ("\n\nBosnia and Herzegovina is a country", ("Bosnia and Herzegovina", "ok")),
        ("The most notable example of a country using the Peso is actually Chile.", ("Chile", "ok")),
        ("The United Kingdom (UK) is a country in Europe that uses the Pound.", ("The United Kingdom", "ok")),
        ("The United Kingdom is a notable example of a country.", ("The United Kingdom", "ok")),
        ("I don't know any city there.", (None, "idk")),
        ("I'm not sure where to start.", (None, "idk")),
        ("Here is a list of cities:", (None, "invalid")),
        ("What a wonderful choice, I am thrilled", (None, "invalid")),
        ("", (None, "invalid")),
        ("12345", (None, "invalid")),
    ],
)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_word_limits_drop_one_word_names_when_asked():
    assert extract_answer("Madonna is a singer.", min_words=2) == (None, "invalid")
    assert extract_answer("Jaden Smith is his son.", min_words=2) == ("Jaden Smith", "ok")
    assert extract_answer("A B C D E F G", max_words=6) == (None, "invalid")
