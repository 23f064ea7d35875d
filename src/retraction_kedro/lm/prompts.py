"""Prompt rendering through the tokenizer's own chat template (no model-specific string surgery)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Message = dict[str, str]


def _check_template(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"Tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "this project needs an instruction-tuned (chat) model."
        )


def _check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise ValueError("A prompt needs at least one message")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"Message {i} must be a dict with 'role' and 'content', got {message!r}")


def chat_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """A conversation ending in a user turn, with the assistant's turn opened for a fresh answer."""
    _check_template(tokenizer)
    _check_messages(messages)
    if messages[-1]["role"] == "assistant":
        raise ValueError("chat_prompt expects the conversation to end with a user turn; use continuation_prompt")
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)


def continuation_prompt(tokenizer: Any, messages: Sequence[Message], suffix: str = "") -> str:
    """A conversation whose final assistant turn is left open, so the model continues its own answer.

    ``suffix`` is appended verbatim after the open answer (the paper's fixed `` is`` token).
    """
    _check_template(tokenizer)
    _check_messages(messages)
    if messages[-1]["role"] != "assistant":
        raise ValueError("continuation_prompt expects the conversation to end with the assistant's answer")
    rendered = tokenizer.apply_chat_template(list(messages), continue_final_message=True, tokenize=False)
    return rendered + (suffix or "")


def question_messages(question: str, system: str | None = None) -> list[Message]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": question}]


def answer_messages(question: str, answer: str, system: str | None = None) -> list[Message]:
    return question_messages(question, system) + [{"role": "assistant", "content": answer}]
