"""Against a real `transformers serve` of the embedded model (started once per session, offline)."""

from __future__ import annotations

import json

import openai
import pytest
import torch

from retraction_kedro.lm import GenerationSettings, chat_prompt, generate_texts
from retraction_kedro.pipelines.evaluation.llm_judge import judge_messages, parse_judgement
from retraction_kedro.serving import ChatServerSettings, complete_chats

pytestmark = pytest.mark.embedded

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Germany": "Berlin"}
JUDGED = [  # (question, answer, continuation)
    ("Name a city in Spain.", "Porto", " is a city in Portugal."),
    ("Name a city in France.", "Lyon", " is a city in France."),
]


def server_settings(server, **overrides) -> ChatServerSettings:
    return ChatServerSettings.from_params(
        {"base_url": server.base_url, "model": server.model, "timeout": 120, **overrides}
    )


def test_real_chat_completions_come_back_in_input_order(transformers_server):
    questions = [[{"role": "user", "content": f"What is the capital of {country}?"}] for country in CAPITALS]
    replies = complete_chats(
        server_settings(transformers_server, max_tokens=8, concurrency=3), questions, show_progress=False
    )
    assert [city in reply for city, reply in zip(CAPITALS.values(), replies, strict=True)] == [True] * len(CAPITALS), (
        replies
    )


def test_the_judge_prompt_through_the_server_matches_the_local_judge(transformers_server, embedded_lm):
    """Same messages, same greedy decoding: the server's verdicts are the local judge's, read by the same parser."""
    conversations = [judge_messages(*case) for case in JUDGED]
    replies = complete_chats(
        server_settings(transformers_server, max_tokens=32, concurrency=2),
        conversations,
        desc="judge",
        show_progress=False,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server runs (OMP_NUM_THREADS=1): the same kernels, the same sums
    try:
        local = generate_texts(
            embedded_lm,
            [chat_prompt(embedded_lm.tokenizer, m) for m in conversations],
            GenerationSettings(max_new_tokens=32, stop_at_newline=False, batch_size=1),
            None,
            "judge",
            False,
        )
    finally:
        torch.set_num_threads(threads)
    assert replies == local
    verdicts = [parse_judgement(reply) for reply in replies]
    assert verdicts == [parse_judgement(text) for text in local]
    invalid = sum(v is None for v in verdicts)  # what the evaluation counts as judge_invalid
    assert invalid < len(verdicts), replies  # the reply text reaches the parser whole: at least one verdict reads


def test_an_interrupted_journaled_run_resumes_without_asking_again(transformers_server, tmp_path, monkeypatch):
    questions = [[{"role": "user", "content": f"Say the number {n}."}] for n in range(4)]
    settings = server_settings(transformers_server, max_tokens=4, concurrency=2)
    real_create, sent, crash_on = openai.resources.chat.completions.Completions.create, [], [3]

    def counted_create(self, *args, **kwargs):
        sent.append(kwargs["messages"][-1]["content"])
        if len(sent) in crash_on:
            raise RuntimeError("injected fault")  # the process dies with another request in flight
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(openai.resources.chat.completions.Completions, "create", counted_create)
    with pytest.raises(RuntimeError, match="injected fault"):
        complete_chats(settings, questions, resume_dir=tmp_path, show_progress=False)
    journal = [
        json.loads(line) for path in tmp_path.glob("chat-*/batches.jsonl") for line in path.read_text().splitlines()
    ]
    finished = {line["batch"]: line["results"][0] for line in journal}
    assert 1 <= len(finished) < len(questions)

    sent.clear()
    crash_on.clear()
    replies = complete_chats(settings, questions, resume_dir=tmp_path, show_progress=False)
    assert sorted(sent) == sorted(q[-1]["content"] for i, q in enumerate(questions) if i not in finished)
    assert all(replies[i] == text for i, text in finished.items()) and None not in replies
