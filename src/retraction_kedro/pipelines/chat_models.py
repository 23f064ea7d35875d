"""Asking a chat model without hooks (the judge, the answer extractor): loaded in the node, or behind a server."""

from __future__ import annotations

from typing import Literal

from retraction_kedro.config.parameters import ChatModelParameters, ModelParameters, RuntimeParameters
from retraction_kedro.lm import GenerationSettings, chat_prompt, generate_texts, load_language_model
from retraction_kedro.serving import complete_chats


def ask(
    conversations: list[list[dict[str, str]]],
    backend: Literal["local", "server"],
    chat: ChatModelParameters,
    where: str,
    run: RuntimeParameters,
    desc: str,
    stop_at_newline: bool,
    default_model: ModelParameters | None = None,
) -> list[str | None]:
    """One greedy reply per conversation, in order; ``None`` where a server's reply failed after its retries.

    ``where`` is the parameter group (``evaluation.llm_judge``) errors name; ``default_model`` answers
    when ``chat.model`` is null (the extractor's default: the model under study)."""
    if backend == "server":
        return complete_chats(chat.server_settings(where), conversations, resume_dir=run.resume_dir, desc=desc, show_progress=run.show_progress)
    model = ModelParameters.parse(chat.model, f"{where}.model") if chat.model else default_model
    lm = load_language_model(model.spec)
    prompts = [chat_prompt(lm.tokenizer, conversation) for conversation in conversations]
    settings = GenerationSettings(max_new_tokens=chat.max_new_tokens, stop_at_newline=stop_at_newline, batch_size=model.batch_size)
    return generate_texts(lm, prompts, settings, run.resume_dir, desc, run.show_progress)
