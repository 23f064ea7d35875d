"""Where the chat server is and how to ask it, validated from a parameters mapping."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

DUMMY_API_KEY = "EMPTY"  # local servers (transformers serve, vLLM without --api-key) accept any key


@dataclass(frozen=True)
class ChatServerSettings:
    """An OpenAI-compatible chat endpoint and the request settings sent to it.

    ``base_url`` is the API root (``http://host:port/v1``); ``model`` the served model's
    name as the server lists it. The key is read from the environment variable
    ``api_key_env`` so it never sits in a parameters file. ``extra_body`` is passed
    through to the server, e.g. vLLM's constrained output
    ``{"structured_outputs": {"choice": ["True", "False"]}}``.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 60.0  # seconds per request attempt
    max_retries: int = 3  # on connection errors, timeouts, 408/409/429 and 5xx, with exponential backoff
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    extra_body: dict[str, Any] | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str = "server") -> "ChatServerSettings":
        """Settings from a parameters mapping; ``name`` is its place in the parameters, used in errors."""
        if not isinstance(params, dict):
            raise ValueError(f"{name} must be a mapping of chat server settings, got {params!r}")
        known = [f.name for f in fields(cls)]
        for key, value in params.items():
            if key not in known:
                raise ValueError(f"Unknown key {name}.{key} (value {value!r}); expected some of {known}")
        for key in ("base_url", "model"):
            if key not in params:
                raise ValueError(f"{name}.{key} is required")
        _check({**{f.name: f.default for f in fields(cls)}, **params}, name)
        return cls(**params)

    def __post_init__(self) -> None:
        _check({f.name: getattr(self, f.name) for f in fields(self)}, type(self).__name__)

    def request_fields(self) -> dict[str, Any]:
        """What decides the replies (a journal of replies is keyed by it); not where or how fast they come."""
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "extra_body": self.extra_body,
        }


def _check(values: dict[str, Any], name: str) -> None:
    """One line naming the first bad key and its value."""

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(f"{name}.{key} must be {expected}, got {values[key]!r}")

    url = urlsplit(values["base_url"]) if isinstance(values["base_url"], str) else None
    if url is None or url.scheme not in ("http", "https") or not url.hostname:
        raise bad("base_url", "an http(s) URL such as http://127.0.0.1:8000/v1")
    try:
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise bad("base_url", "an http(s) URL with a numeric port") from None
    for key in ("model", "api_key_env"):
        if not isinstance(values[key], str) or not values[key].strip():
            raise bad(key, "a non-empty string")
    for key, low in (("concurrency", 1), ("max_retries", 0), ("max_tokens", 1)):
        value = values[key]
        if not _is_int(value) or value < low:
            raise bad(key, f"an integer >= {low}")
    if not _is_number(values["timeout"]) or values["timeout"] <= 0:
        raise bad("timeout", "a number of seconds > 0")
    if not _is_number(values["temperature"]) or values["temperature"] < 0:
        raise bad("temperature", "a number >= 0")
    if values["seed"] is not None and not _is_int(values["seed"]):
        raise bad("seed", "an integer or null")
    if values["extra_body"] is not None and not isinstance(values["extra_body"], dict):
        raise bad("extra_body", "a mapping or null")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
