"""The client against the scripted server: order, retries, error replies, keys, the journal."""

from __future__ import annotations

import json
import logging

import pytest

from retraction_kedro.serving import ChatServerError, ChatServerSettings, complete_chats

from .conftest import free_port


def settings_for(server, **overrides) -> ChatServerSettings:
    return ChatServerSettings.from_params(
        {"base_url": server.base_url, "model": server.model, "timeout": 10, **overrides}
    )


def ask(texts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}] for text in texts]


def journal_lines(root) -> list[dict]:
    return [json.loads(line) for path in root.glob("chat-*/batches.jsonl") for line in path.read_text().splitlines()]


def test_replies_come_back_in_input_order_when_they_finish_out_of_order(scripted_server):
    texts = ["slow 0", "1", "2", "slow 3", "4", "5"]
    replies = complete_chats(settings_for(scripted_server, concurrency=4), ask(texts), show_progress=False)
    assert replies == [f"echo: {t}" for t in texts]
    sent = scripted_server.chat_requests()
    assert sorted(b["messages"][-1]["content"] for b in sent) == sorted(texts)
    assert {(b["model"], b["max_tokens"], b["temperature"]) for b in sent} == {("scripted-model", 256, 0.0)}


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried_with_backoff(scripted_server, status):
    scripted_server.script = [status, 200]
    replies = complete_chats(settings_for(scripted_server, max_retries=2), ask(["a"]), show_progress=False)
    assert replies == ["echo: a"]
    assert len(scripted_server.chat_requests()) == 2


def test_a_client_error_is_not_retried_and_counts_invalid_not_journaled(scripted_server, tmp_path, caplog):
    scripted_server.script = [400, 200]
    settings = settings_for(scripted_server, concurrency=1)
    with caplog.at_level(logging.WARNING, logger="retraction_kedro.serving"):
        replies = complete_chats(settings, ask(["a", "b"]), resume_dir=tmp_path, desc="judge", show_progress=False)
    assert replies == [None, "echo: b"]
    assert len(scripted_server.chat_requests()) == 2  # no retry of the 400
    assert "judge: 1 of 2 replies" in caplog.text and "HTTP 400: scripted status 400" in caplog.text


def test_error_replies_are_asked_again_by_a_rerun_after_a_crash(scripted_server, tmp_path):
    scripted_server.script = [200, 400, "drop"]
    settings = settings_for(scripted_server, concurrency=1, max_retries=0)
    with pytest.raises(ChatServerError, match="Cannot reach the chat server"):
        complete_chats(settings, ask(["a", "b", "c", "d"]), resume_dir=tmp_path, show_progress=False)
    journaled = {line["batch"] for line in journal_lines(tmp_path)}
    assert 0 in journaled and not journaled & {1, 2}  # the good reply is kept, the 400 and the dropped one are not
    scripted_server.requests.clear()
    replies = complete_chats(settings, ask(["a", "b", "c", "d"]), resume_dir=tmp_path, show_progress=False)
    assert replies == ["echo: a", "echo: b", "echo: c", "echo: d"]
    asked = [b["messages"][-1]["content"] for b in scripted_server.chat_requests()]
    assert asked == [t for i, t in enumerate("abcd") if i not in journaled]
    assert not list(tmp_path.iterdir())  # the journal is removed once every reply is returned


def test_the_journal_is_not_reused_when_the_request_settings_change(scripted_server, tmp_path):
    scripted_server.script = [200, "drop"]
    with pytest.raises(ChatServerError):
        complete_chats(
            settings_for(scripted_server, concurrency=1, max_retries=0),
            ask(["a", "b"]),
            resume_dir=tmp_path,
            show_progress=False,
        )
    scripted_server.requests.clear()
    complete_chats(
        settings_for(scripted_server, max_tokens=7), ask(["a", "b"]), resume_dir=tmp_path, show_progress=False
    )
    assert len(scripted_server.chat_requests()) == 2  # different max_tokens: different replies, nothing reused
    scripted_server.requests.clear()
    complete_chats(
        settings_for(scripted_server, concurrency=3, timeout=30),
        ask(["a", "b"]),
        resume_dir=tmp_path,
        show_progress=False,
    )
    assert [b["messages"][-1]["content"] for b in scripted_server.chat_requests()] == ["b"]


def test_an_empty_reply_is_invalid(scripted_server, caplog):
    scripted_server.script = ["empty"]
    with caplog.at_level(logging.WARNING, logger="retraction_kedro.serving"):
        assert complete_chats(settings_for(scripted_server), ask(["a"]), show_progress=False) == [None]
    assert "1 empty" in caplog.text


def test_the_key_comes_from_the_named_environment_variable(scripted_server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "secret-123")
    complete_chats(settings_for(scripted_server, api_key_env="JUDGE_KEY"), ask(["a"]), show_progress=False)
    monkeypatch.delenv("JUDGE_KEY")
    complete_chats(settings_for(scripted_server, api_key_env="JUDGE_KEY"), ask(["a"]), show_progress=False)
    keys = [headers["authorization"] for path, headers, _ in scripted_server.requests if path.endswith("completions")]
    assert keys == ["Bearer secret-123", "Bearer EMPTY"]


def test_a_refused_key_stops_the_run_with_one_line_naming_the_variable(scripted_server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    scripted_server.script = [401]
    with pytest.raises(ChatServerError) as error:
        complete_chats(settings_for(scripted_server, api_key_env="JUDGE_KEY"), ask(["a", "b"]), show_progress=False)
    assert "refused the API key from $JUDGE_KEY: HTTP 401" in str(error.value) and "\n" not in str(error.value)


def test_a_model_the_server_does_not_serve_fails_before_any_request(scripted_server):
    with pytest.raises(ChatServerError, match=r"does not list model 'other' \(it lists \['scripted-model'\]\)"):
        complete_chats(
            ChatServerSettings(base_url=scripted_server.base_url, model="other"), ask(["a"]), show_progress=False
        )
    assert scripted_server.chat_requests() == []


def test_a_404_on_a_chat_completion_stops_the_run(scripted_server):
    scripted_server.script = [404]
    with pytest.raises(ChatServerError, match="answered HTTP 404 to a chat completion with model 'scripted-model'"):
        complete_chats(
            settings_for(scripted_server, concurrency=1), ask(["a", "slow b", "slow c"]), show_progress=False
        )
    assert len(scripted_server.chat_requests()) < 3  # the queued request is cancelled


def test_extra_body_reaches_the_server(scripted_server):
    choice = {"structured_outputs": {"choice": ["True", "False"]}}
    complete_chats(settings_for(scripted_server, extra_body=choice, seed=7), ask(["a"]), show_progress=False)
    (body,) = scripted_server.chat_requests()
    assert body["structured_outputs"] == {"choice": ["True", "False"]} and body["seed"] == 7


def test_a_dead_url_gives_one_line_naming_it_and_how_to_start_a_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = ChatServerSettings(base_url=url, model="judge-model", max_retries=1)
    with pytest.raises(ChatServerError) as error:
        complete_chats(settings, ask(["a", "b"]), resume_dir=tmp_path, show_progress=False)
    message = str(error.value)
    assert "\n" not in message and f"Cannot reach the chat server at {url}" in message
    assert "transformers serve" in message and "vllm serve judge-model" in message
    assert journal_lines(tmp_path) == []


def test_no_work_asks_no_server():
    dead = ChatServerSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    assert complete_chats(dead, [], show_progress=False) == []


@pytest.mark.parametrize("bad", [[], [{"role": "user"}], "hello", [{"role": "user", "content": 3}]])
def test_a_malformed_conversation_is_named_by_its_index(scripted_server, bad):
    with pytest.raises(ValueError, match="Conversation 1 must be a non-empty list"):
        complete_chats(settings_for(scripted_server), [ask(["a"])[0], bad], show_progress=False)
    assert scripted_server.requests == []
