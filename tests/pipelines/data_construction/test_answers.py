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


@pytest.mark.parametrize(
    ("response", "name"),
    [
        ("The city of Taipei is a vibrant and culturally rich destination in East Asia.", "Taipei"),
        ("The city of Kano, Nigeria, is a thriving metropolis.", "Kano"),  # not the country after it
        ("The city that is known as Seoul is indeed a vibrant destination.", "Seoul"),
        ("Cities like Sydney, Melbourne, Perth, and Adelaide are iconic Australian cities.", "Sydney"),
        ("Yurtulkale in Uzbekistan is a city that has been a melting pot.", "Yurtulkale"),
        ("One of the most iconic cities in Sri Lanka is certainly Kotte. Kotte is a thriving metropolis.", "Kotte"),
        ("The capital of Libya is Tripoli, a city renowned for its history.", "Tripoli"),
        ("The country of Monaco is known for its stunning architecture.", "Monaco"),
    ],
)
def test_names_introduced_as_such_are_read(response, name):
    assert extract_answer(response, 1, 5) == (name, "ok")


@pytest.mark.parametrize("response", ["Cities in China: Beijing is a major city.", "Capital City in Cameroon is Koumik", "Cities in Slovakia are:"])
def test_a_word_for_a_kind_of_answer_is_no_name(response):
    assert extract_answer(response, 1, 5) == (None, "invalid")
