"""Continuations of the model's own answers, and hidden states at the answer's last token."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl
import torch

from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.lm import (
    GenerationSettings,
    capture_hidden_states,
    continuation_prompt,
    generate_texts,
    load_language_model,
)

logger = logging.getLogger(__name__)


def _continuation_prompts(lm, rows: list[dict[str, Any]], suffix: str, source: str) -> list[str]:
    prompts = []
    for number, row in enumerate(rows):
        messages = list(row["messages"])
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"{source}, row {number}: 'messages' must end with the assistant's answer")
        prompts.append(continuation_prompt(lm.tokenizer, messages, suffix=suffix))
    return prompts


def _hidden(lm, prompts: list[str], activations: dict[str, Any], model: dict[str, Any], runtime: dict[str, Any], desc: str) -> dict[str, torch.Tensor]:
    states = capture_hidden_states(
        lm, prompts, layers=activations.get("layers"), position=activations.get("position", -1),
        batch_size=model.get("batch_size", 16), resume_dir=runtime.get("resume_dir"), desc=desc,
        show_progress=runtime.get("show_progress", True),
        out_dtype=getattr(torch, activations.get("dtype", "float32")),
    )  # fmt: skip
    layers = activations.get("layers") or list(range(lm.num_layers))
    return {"hidden": states, "layers": torch.tensor(sorted(layers), dtype=torch.long)}


def truthfulness_hidden_states(
    questions: pl.DataFrame, activations: dict[str, Any], model: dict[str, Any], runtime: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], pl.DataFrame]:
    """Hidden states at the last token of the candidate answer (trailing period stripped, no system turn)."""
    rows = questions.to_dicts()
    if not rows:
        raise ValueError("The truthfulness question table is empty")
    lm = load_language_model(model)
    prompts = []
    for row in rows:
        turns = [m for m in row["messages"] if m["role"] != "system"]
        answer = str(row["answer"]).strip().rstrip(".").strip()
        turns = [t for t in turns if t["role"] != "assistant"] + [{"role": "assistant", "content": answer}]
        prompts.append(continuation_prompt(lm.tokenizer, turns))
    states = _hidden(lm, prompts, activations, model, runtime, "truthfulness hidden states")
    index = pl.DataFrame(
        {
            "row": list(range(len(rows))),
            "question": [r["question"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "label": [int(r["label"]) for r in rows],
            "tag": [r.get("tag") for r in rows],
        }
    )
    return states, index


def continue_answers(
    continuations: pl.DataFrame, activations: dict[str, Any], model: dict[str, Any], runtime: dict[str, Any]
) -> pl.DataFrame:
    """Greedy continuation of 'question -> the model's answer', first line only (the paper's setting)."""
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation set is empty; run data_construction first")
    lm = load_language_model(model)
    suffix = activations.get("suffix") or ""
    prompts = _continuation_prompts(lm, rows, suffix, "continuation set")
    settings = GenerationSettings(
        max_new_tokens=activations["max_new_tokens"], stop_at_newline=True, batch_size=model.get("batch_size", 16)
    )
    responses = generate_texts(lm, prompts, settings, runtime.get("resume_dir"), "continue answers", runtime.get("show_progress", True))
    for row, response in zip(rows, responses):
        row["suffix"] = suffix
        row["response"] = response
    return rows_to_frame(rows)


def continuation_hidden_states(
    continuations: pl.DataFrame, activations: dict[str, Any], model: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Hidden states at the last prompt token (the answer's last token, or the suffix)."""
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation set is empty; run data_construction first")
    lm = load_language_model(model)
    prompts = _continuation_prompts(lm, rows, activations.get("suffix") or "", "continuation set")
    return _hidden(lm, prompts, activations, model, runtime, "continuation hidden states")
