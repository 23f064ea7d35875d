import pytest

from retraction_kedro.serving import ChatServerSettings

GOOD = {"base_url": "http://127.0.0.1:8000/v1", "model": "m"}


def test_from_params_keeps_every_setting_and_defaults_the_rest():
    settings = ChatServerSettings.from_params({**GOOD, "concurrency": 4, "timeout": 5, "extra_body": {"top_k": 1}})
    assert (settings.concurrency, settings.timeout, settings.extra_body) == (4, 5, {"top_k": 1})
    assert (settings.max_retries, settings.temperature, settings.api_key_env) == (3, 0.0, "OPENAI_API_KEY")


@pytest.mark.parametrize(
    "params, message",
    [
        ({**GOOD, "concurency": 4}, "Unknown key evaluation.server.concurency (value 4)"),
        ({"model": "m"}, "evaluation.server.base_url is required"),
        ({**GOOD, "base_url": "127.0.0.1:8000/v1"}, "evaluation.server.base_url must be an http(s) URL"),
        (
            {**GOOD, "base_url": "http://127.0.0.1:80a0/v1"},
            "evaluation.server.base_url must be an http(s) URL with a numeric port",
        ),
        ({**GOOD, "concurrency": "8"}, "evaluation.server.concurrency must be an integer >= 1, got '8'"),
        ({**GOOD, "concurrency": 0}, "evaluation.server.concurrency must be an integer >= 1, got 0"),
        ({**GOOD, "max_retries": True}, "evaluation.server.max_retries must be an integer >= 0, got True"),
        ({**GOOD, "timeout": 0}, "evaluation.server.timeout must be a number of seconds > 0, got 0"),
        ({**GOOD, "temperature": -0.1}, "evaluation.server.temperature must be a number >= 0, got -0.1"),
        ({**GOOD, "model": ""}, "evaluation.server.model must be a non-empty string, got ''"),
        ({**GOOD, "seed": 1.5}, "evaluation.server.seed must be an integer or null, got 1.5"),
        ({**GOOD, "extra_body": ["x"]}, "evaluation.server.extra_body must be a mapping or null, got ['x']"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_key_and_value(params, message):
    with pytest.raises(ValueError) as error:
        ChatServerSettings.from_params(params, name="evaluation.server")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="ChatServerSettings.max_tokens must be an integer >= 1, got 0"):
        ChatServerSettings(**GOOD, max_tokens=0)


def test_journal_key_follows_what_decides_the_replies_only():
    base = ChatServerSettings(**GOOD)
    elsewhere = ChatServerSettings(
        base_url="http://10.0.0.2:9000/v1", model="m", concurrency=64, timeout=5, max_retries=0
    )
    assert base.request_fields() == elsewhere.request_fields()
    for change in ({"model": "n"}, {"max_tokens": 9}, {"temperature": 0.7}, {"seed": 1}, {"extra_body": {"top_k": 1}}):
        assert ChatServerSettings(**{**GOOD, **change}).request_fields() != base.request_fields()
