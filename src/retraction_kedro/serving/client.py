"""Many chat completions from an OpenAI-compatible server, concurrent, journaled, in input order.

A thread pool over the ``openai`` package's synchronous client, not ``AsyncOpenAI``: the
call works the same from a Kedro node, a script or a notebook that already runs an event
loop (where ``asyncio.run`` refuses), the requests wait on the network so threads cost
nothing that matters at the tens to hundreds of requests a server takes at once, and
the journal and progress bar are written from the caller's thread only. Retries with
exponential backoff (connection errors, timeouts, 408/409/429, 5xx; ``Retry-After``
honoured) are the client's own; 4xx client errors are not retried.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
from tqdm.auto import tqdm

from ..lm.batching import BatchJournal, fingerprint
from .settings import DUMMY_API_KEY, ChatServerSettings

logger = logging.getLogger(__name__)

Conversation = Sequence[dict[str, str]]
PREFLIGHT_TIMEOUT = 10.0  # seconds to list the served models before any work


class ChatServerError(RuntimeError):
    """The server cannot do any of the work (unreachable, key refused, model not served): stop at once."""


@dataclass(frozen=True)
class _Failed:
    """A request the server answered with an error, after retries: its reply is invalid."""

    reason: str


def complete_chats(
    settings: ChatServerSettings,
    conversations: Sequence[Conversation],
    resume_dir: str | os.PathLike | None = None,
    desc: str = "chat",
    show_progress: bool = True,
) -> list[str | None]:
    """The assistant's reply to each conversation, in input order; ``None`` where there is no usable one.

    ``None`` is an error reply after retries or an empty reply: the caller counts it as invalid.
    Finished replies are journaled under ``resume_dir`` (keyed by the request settings and the
    conversations), so a rerun after a crash asks only the rest; the journal is removed once
    every reply is returned. Raises ``ChatServerError`` (one line) when the server cannot be used.
    """
    conversations = [_checked(i, c) for i, c in enumerate(conversations)]
    journal = BatchJournal(resume_dir, "chat", fingerprint(settings.request_fields(), conversations))
    replies: dict[int, str] = {i: results[0] for i, results in journal.finished_texts().items()}
    pending = [i for i in range(len(conversations)) if i not in replies]
    failures: dict[int, _Failed] = {}
    if pending:
        with _client(settings) as client:
            _check_server(client, settings)
            with tqdm(
                total=len(conversations),
                initial=len(replies),
                desc=desc,
                unit="request",
                mininterval=2.0,
                disable=not show_progress,
            ) as bar:
                for index, outcome in _ask_all(client, settings, conversations, pending):
                    if isinstance(outcome, _Failed):
                        failures[index] = outcome
                    else:
                        journal.record_texts(index, [outcome])
                        replies[index] = outcome
                    bar.update(1)
    results = [replies[i] if i in replies and replies[i].strip() else None for i in range(len(conversations))]
    _report(settings, desc, results, failures)
    journal.close()
    return results


def _checked(index: int, conversation: Any) -> list[dict[str, str]]:
    ok = isinstance(conversation, Sequence) and not isinstance(conversation, str) and len(conversation) > 0
    ok = ok and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in conversation
    )
    if not ok:
        raise ValueError(
            f"Conversation {index} must be a non-empty list of {{'role': str, 'content': str}} messages, "
            f"got {conversation!r:.200}"
        )
    return [dict(m) for m in conversation]


def _ask_all(
    client: openai.OpenAI, settings: ChatServerSettings, conversations: list[list[dict[str, str]]], pending: list[int]
) -> Iterator[tuple[int, str | _Failed]]:
    """(index, reply or failure) as requests finish; a ``ChatServerError`` stops the rest."""
    executor = ThreadPoolExecutor(max_workers=min(settings.concurrency, len(pending)), thread_name_prefix="chat")
    try:
        running = {executor.submit(_ask, client, settings, conversations[i]): i for i in pending}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            # failures last, so every reply that came back is journaled before one stops the run
            for future in sorted(finished, key=lambda f: f.exception() is not None):
                yield running.pop(future), future.result()
    finally:
        # queued requests are dropped; those already sent finish (within the timeout), so no
        # request of this call reaches the server after it returns
        executor.shutdown(wait=True, cancel_futures=True)


def _client(settings: ChatServerSettings) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=settings.base_url,
        api_key=os.environ.get(settings.api_key_env) or DUMMY_API_KEY,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
    )


def _check_server(client: openai.OpenAI, settings: ChatServerSettings) -> None:
    """Fail before any work when the server is down, refuses the key or does not serve the model."""
    try:
        served = [m.id for m in client.with_options(timeout=min(settings.timeout, PREFLIGHT_TIMEOUT)).models.list()]
    except openai.NotFoundError:  # a server without the model listing: the requests will tell
        return
    except openai.APIConnectionError as error:
        raise _unreachable(settings, error) from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
        raise _refused(settings, error) from None
    except openai.APIStatusError as error:
        raise ChatServerError(
            f"The chat server at {settings.base_url} answered HTTP {error.status_code} to GET /models: {_detail(error)}"
        ) from None
    if settings.model not in served:
        raise ChatServerError(
            f"The chat server at {settings.base_url} does not list model {settings.model!r} (it lists {served}): "
            f"set model to one it lists, or start a server with this model as its argument "
            f"(`transformers serve {settings.model}`, `vllm serve {settings.model}`)"
        )


def _ask(client: openai.OpenAI, settings: ChatServerSettings, messages: list[dict[str, str]]) -> str | _Failed:
    try:
        response = client.chat.completions.create(
            model=settings.model,
            messages=messages,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            **({"seed": settings.seed} if settings.seed is not None else {}),
            **({"extra_body": settings.extra_body} if settings.extra_body else {}),
        )
    except openai.APITimeoutError:  # one slow request; the server still answers the others
        return _Failed(f"timed out after {settings.timeout} s, {settings.max_retries} retries")
    except openai.APIConnectionError as error:  # the server went away: every later request would fail too
        raise _unreachable(settings, error) from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
        raise _refused(settings, error) from None
    except openai.NotFoundError as error:  # no such route or model: no request can succeed
        raise ChatServerError(
            f"The chat server at {settings.base_url} answered HTTP 404 to a chat completion with model "
            f"{settings.model!r}: {_detail(error)}"
        ) from None
    except openai.APIStatusError as error:
        return _Failed(f"HTTP {error.status_code}: {_detail(error)}")
    if not response.choices:
        return _Failed("a reply without choices")
    return response.choices[0].message.content or ""


def _unreachable(settings: ChatServerSettings, error: Exception) -> ChatServerError:
    url = urlsplit(settings.base_url)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    return ChatServerError(
        f"Cannot reach the chat server at {settings.base_url} ({_cause(error)}). Start one, e.g. "
        f"`transformers serve --host {host} --port {port} {settings.model}` (pip install 'transformers[serving]') "
        f"or `vllm serve {settings.model} --host {host} --port {port}`, or set base_url to a running server."
    )


def _refused(settings: ChatServerSettings, error: openai.APIStatusError) -> ChatServerError:
    variable = f"${settings.api_key_env}"
    source = variable if os.environ.get(settings.api_key_env) else f"a dummy key ({variable} is unset)"
    return ChatServerError(
        f"The chat server at {settings.base_url} refused the API key from {source}: "
        f"HTTP {error.status_code} {_detail(error)}"
    )


def _cause(error: Exception) -> str:
    cause = error.__cause__ or error.__context__ or error
    return " ".join(str(cause).split()) or type(cause).__name__


def _detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or body.get("error") or body
    return " ".join(str(body if body is not None else error.message).split())[:300]


def _report(settings: ChatServerSettings, desc: str, results: list[str | None], failures: dict[int, _Failed]) -> None:
    invalid = sum(r is None for r in results)
    if not invalid:
        return
    reasons = Counter(f.reason for f in failures.values())
    empty = invalid - len(failures)
    summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(3))
    logger.warning(
        "%s: %d of %d replies from %s are invalid (%d error replies%s; %d empty)",
        desc,
        invalid,
        len(results),
        settings.base_url,
        len(failures),
        f": {summary}" if summary else "",
        empty,
    )
