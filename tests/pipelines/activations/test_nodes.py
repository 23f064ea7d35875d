import polars as pl
import pytest
import torch

from retraction_kedro.pipelines.activations import nodes
from tests.conftest import model_params

RUNTIME = {"resume_dir": None, "show_progress": False}
ACTIVATIONS = {"max_new_tokens": 6, "suffix": "", "layers": None, "position": -1, "dtype": "float32"}


@pytest.fixture(autouse=True)
def use_tiny_model(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)


def continuation_rows():
    return pl.DataFrame([
        {"question": q, "name": a, "result": r, "index": i,
         "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for i, (q, a, r) in enumerate([("Name a city in Germany.", "Lyon", False), ("Name a city.", "Paris", True),
                                       ("Capital of Italy?", "Rome", True)])
    ])  # fmt: skip


def test_continuations_keep_row_order_and_record_the_suffix(tiny_lm):
    table = nodes.continue_answers(continuation_rows(), {**ACTIVATIONS, "suffix": " is"}, model_params(2), RUNTIME)
    assert table["name"].to_list() == ["Lyon", "Paris", "Rome"]
    assert table["suffix"].to_list() == [" is"] * 3
    assert all("\n" not in r for r in table["response"].to_list())


def test_hidden_states_are_aligned_with_the_table(tiny_lm):
    states = nodes.continuation_hidden_states(continuation_rows(), ACTIVATIONS, model_params(2), RUNTIME)
    assert states["hidden"].shape == (3, tiny_lm.num_layers, tiny_lm.hidden_size)
    assert states["layers"].tolist() == list(range(tiny_lm.num_layers))
    single = nodes.continuation_hidden_states(continuation_rows()[1:2], ACTIVATIONS, model_params(1), RUNTIME)
    error = (states["hidden"][1] - single["hidden"][0]).norm(dim=-1) / single["hidden"][0].norm(dim=-1)
    assert error.max() < 1e-4


def test_truthfulness_prompt_strips_the_period_and_the_system_turn(tiny_lm, monkeypatch):
    seen = []
    real = nodes.capture_hidden_states
    monkeypatch.setattr(nodes, "capture_hidden_states", lambda lm, prompts, **kw: (seen.extend(prompts), real(lm, prompts, **kw))[1])
    questions = pl.DataFrame([{
        "question": "What is the capital of Italy?", "answer": "Rome.", "label": 1, "tag": "capital",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "What is the capital of Italy?"},
                     {"role": "assistant", "content": "Rome."}],
    }])  # fmt: skip
    states, index = nodes.truthfulness_hidden_states(questions, {}, {**ACTIVATIONS, "layers": [0, 2]}, model_params(4), RUNTIME)
    assert seen[0].endswith("assistant\nRome") and "S<|im_end|>" not in seen[0]
    assert states["hidden"].shape == (1, 2, tiny_lm.hidden_size) and states["layers"].tolist() == [0, 2]
    assert index.to_dicts()[0] == {"row": 0, "question": "What is the capital of Italy?", "answer": "Rome.", "label": 1, "tag": "capital"}


def test_malformed_continuation_rows_fail_clearly():
    rows = continuation_rows().to_dicts()
    rows[0]["messages"] = rows[0]["messages"][:1]
    bad = pl.DataFrame(rows)
    with pytest.raises(ValueError, match="row 0: 'messages' must end with the assistant"):
        nodes.continue_answers(bad, ACTIVATIONS, model_params(2), RUNTIME)
