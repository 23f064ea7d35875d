"""Continuations of the model's own answers, and hidden states at the answer's last token."""

from __future__ import annotations

import logging
from typing import Any

import polars as pl
import torch

from retraction_kedro.config.parameters import ActivationParameters, ModelParameters, RuntimeParameters
from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.lm import (
    GenerationSettings,
    capture_hidden_states,
    continuation_prompt,
    generate_texts,
    load_language_model,
    sample_texts,
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


def _hidden(lm, prompts: list[str], settings: ActivationParameters, model: ModelParameters, run: RuntimeParameters, desc: str) -> dict[str, torch.Tensor]:
    states = capture_hidden_states(
        lm, prompts, layers=settings.layers, position=settings.position, batch_size=model.batch_size,
        resume_dir=run.resume_dir, desc=desc, show_progress=run.show_progress, out_dtype=getattr(torch, settings.dtype),
    )  # fmt: skip
    layers = settings.layers or list(range(lm.num_layers))
    return {"hidden": states, "layers": torch.tensor(sorted(layers), dtype=torch.long)}


def _parse(activations: dict[str, Any], model_spec: dict[str, Any], runtime: dict[str, Any]):
    return (
        ActivationParameters.parse(activations, "activations"),
        ModelParameters.parse(model_spec, "model"),
        RuntimeParameters.parse(runtime, "runtime"),
    )


def truthfulness_hidden_states(
    questions: pl.DataFrame, source_manifest: dict[str, Any], activations: dict[str, Any], model_spec: dict[str, Any], runtime: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], pl.DataFrame]:
    """Hidden states at the last token of the candidate answer (trailing period stripped, no system turn).

    ``source_manifest`` orders this after the questions are fetched or built."""
    rows = questions.to_dicts()
    if not rows:
        raise ValueError("The truthfulness question table is empty")
    settings, model, run = _parse(activations, model_spec, runtime)
    lm = load_language_model(model.spec)
    prompts = []
    for row in rows:
        turns = [m for m in row["messages"] if m["role"] != "system"]
        answer = str(row["answer"]).strip().rstrip(".").strip()
        turns = [t for t in turns if t["role"] != "assistant"] + [{"role": "assistant", "content": answer}]
        prompts.append(continuation_prompt(lm.tokenizer, turns))
    states = _hidden(lm, prompts, settings, model, run, "truthfulness hidden states")
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
    continuations: pl.DataFrame, activations: dict[str, Any], model_spec: dict[str, Any], runtime: dict[str, Any]
) -> pl.DataFrame:
    """Greedy continuation of 'question -> the model's answer', first line only (the paper's setting)."""
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation set is empty; run data_construction first")
    settings, model, run = _parse(activations, model_spec, runtime)
    lm = load_language_model(model.spec)
    prompts = _continuation_prompts(lm, rows, settings.suffix, "continuation set")
    generation = GenerationSettings(max_new_tokens=settings.max_new_tokens, stop_at_newline=True, batch_size=model.batch_size)
    responses = generate_texts(lm, prompts, generation, run.resume_dir, "continue answers", run.show_progress)
    for row, response in zip(rows, responses):
        row["suffix"] = settings.suffix
        row["response"] = response
    return rows_to_frame(rows)


def sample_continuations(
    continuations: pl.DataFrame, activations: dict[str, Any], model_spec: dict[str, Any], runtime: dict[str, Any]
) -> pl.DataFrame:
    """The same continuations sampled (``activations.sampling``: temperature, top-p, one run per seed),
    to see how far retraction depends on greedy decoding; rows carry ``sample_seed``."""
    rows = continuations.to_dicts()
    settings, model, run = _parse(activations, model_spec, runtime)
    sampling = settings.sampling
    if not rows or not sampling.seeds:
        return pl.DataFrame(schema={"sample_seed": pl.Int64, "name": pl.String, "result": pl.Boolean, "response": pl.String})
    lm = load_language_model(model.spec)
    prompts = _continuation_prompts(lm, rows, settings.suffix, "continuation set")
    generation = GenerationSettings(max_new_tokens=settings.max_new_tokens, stop_at_newline=True, batch_size=model.batch_size,
                                    do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)  # fmt: skip
    sampled = sample_texts(lm, prompts, generation, sampling.seeds, run.resume_dir, f"sample continuations (seeds {sampling.seeds})", run.show_progress)
    table = [{**row, "suffix": settings.suffix, "response": text, "sample_seed": seed} for seed, texts in sampled.items() for row, text in zip(rows, texts)]
    return rows_to_frame(table)


def continuation_hidden_states(
    continuations: pl.DataFrame, activations: dict[str, Any], model_spec: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Hidden states at the last prompt token (the answer's last token, or the suffix)."""
    rows = continuations.to_dicts()
    if not rows:
        raise ValueError("The continuation set is empty; run data_construction first")
    settings, model, run = _parse(activations, model_spec, runtime)
    lm = load_language_model(model.spec)
    prompts = _continuation_prompts(lm, rows, settings.suffix, "continuation set")
    return _hidden(lm, prompts, settings, model, run, "continuation hidden states")
