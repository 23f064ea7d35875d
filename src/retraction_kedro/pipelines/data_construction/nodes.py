"""Model-specific continuation sets, built by the paper's recipe for any testbed.

A wrong answer is kept only when the same model, asked a separate verification
question about it, contradicts it; a right answer only when the model confirms it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

import polars as pl

from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.lm import (
    GenerationSettings,
    chat_prompt,
    generate_texts,
    load_language_model,
)
from retraction_kedro.sources.paper import fetch_paper_files
from retraction_kedro.testbeds import constraint_values
from retraction_kedro.world import build_embedded_world, mentions_any, name_matches

from .answers import STATUS_IDK, STATUS_INVALID, STATUS_OK, extract_answer, extractor_messages, read_extraction

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class ConstructionError(RuntimeError):
    """A construction stage left a class empty; the message carries the per-stage counts."""


# ---------------------------------------------------------------- raw sources


def build_world_tables(world: dict[str, Any], city: dict[str, Any], currency: dict[str, Any]) -> tuple[Any, ...]:
    """The embedded offline world: two testbeds' free questions, a truthfulness QA set, and
    verification shots on well-known facts asked with each testbed's own template."""
    tables = build_embedded_world(**world, verification={"geo_city": city["verification"], "geo_currency": currency["verification"]})
    names = (
        "geo_city_train", "geo_city_test", "geo_currency_train", "geo_currency_test",
        "truthfulness_train", "truthfulness_test",
    )  # fmt: skip
    manifest = {name: len(tables[name]) for name in names}
    logger.info("Embedded world: %s", manifest)
    shots = (tables["verification_shots_geo_city"], tables["verification_shots_geo_currency"])
    return (*(rows_to_frame(tables[name]) for name in names), *shots, manifest)


def fetch_paper_data(paper_data: dict[str, Any]) -> dict[str, Any]:
    """Make sure the paper's files are under ``root`` (downloaded when online); returns a manifest."""
    options = {key: paper_data[key] for key in ("base_url", "allow_download", "timeout") if paper_data.get(key) is not None}
    paths = fetch_paper_files(paper_data["root"], paper_data["files"], **options)
    return {key: str(path) for key, path in sorted(paths.items())}


# ---------------------------------------------------------------- construction


def _questions(frame: pl.DataFrame, split: str, limit: int | None, seed: int) -> list[dict[str, Any]]:
    rows = frame.to_dicts()
    for index, row in enumerate(rows):
        row["index"], row["split"] = index, split
    if limit is not None and len(rows) > limit:
        rows = sorted(random.Random(f"{seed}-{split}").sample(rows, limit), key=lambda r: r["index"])
    return rows


def _question(by_split: dict[str, list[dict[str, Any]]], split: str, index: int) -> dict[str, Any]:
    """The free question behind a sample: val questions were held out of the training file."""
    return by_split["test" if split == "test" else "train"][index]


def _split_val(train: list[dict[str, Any]], fraction: float, seed: int) -> None:
    """Hold a fraction of the training questions out as validation (by question, no overlap)."""
    if fraction <= 0 or len(train) < 2:
        return
    chosen = random.Random(f"{seed}-val").sample(range(len(train)), max(1, round(len(train) * fraction)))
    for position in chosen:
        train[position]["split"] = "val"


def _settings(model: dict[str, Any], **overrides: Any) -> GenerationSettings:
    return GenerationSettings(batch_size=model.get("batch_size", 16), **overrides)


def sample_answers(
    train_questions: pl.DataFrame,
    test_questions: pl.DataFrame,
    source_manifest: dict[str, Any],
    testbed: dict[str, Any],
    construction: dict[str, Any],
    model: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """Sample free answers (temperature, several seeds), extract the first answer, judge correctness."""
    seed = construction["seed"]
    questions = _questions(train_questions, "train", construction.get("max_questions_per_split"), seed)
    questions += _questions(test_questions, "test", construction.get("max_questions_per_split"), seed)
    _split_val([q for q in questions if q["split"] == "train"], construction.get("val_fraction", 0.0), seed)
    rejected = _all_constraint_values(questions, testbed) if testbed.get("reject_constraint_values") else []
    lm = load_language_model(model)
    prompts = [chat_prompt(lm.tokenizer, q["messages"]) for q in questions]
    rows: list[dict[str, Any]] = []
    for sample_seed in testbed.get("sample_seeds") or construction["sample_seeds"]:
        settings = _settings(
            model, max_new_tokens=construction["answer_max_new_tokens"], do_sample=True,
            temperature=construction["temperature"], top_p=construction["top_p"], seed=sample_seed,
        )  # fmt: skip
        responses = generate_texts(
            lm, prompts, settings, runtime.get("resume_dir"), f"sample answers (seed {sample_seed})",
            runtime.get("show_progress", True),
        )  # fmt: skip
        extracted = _extract_with_llm(lm, questions, responses, construction, model, runtime)
        for question, response, output in zip(questions, responses, extracted):
            if output is None:
                name, status = extract_answer(response, testbed["min_name_words"], testbed["max_name_words"])
            else:
                name, status = read_extraction(output, response, testbed["min_name_words"], testbed["max_name_words"])
            if name and rejected and name_matches(name, rejected):
                name, status = None, STATUS_INVALID  # e.g. a country named where a city was asked for
            rows.append({
                "split": question["split"], "index": question["index"], "sample_seed": sample_seed,
                "response": response, "name": name, "status": status,
                "result": bool(name) and name_matches(name, question["answers"]),
            })  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"name": pl.String}, infer_schema_length=None)


def _extract_with_llm(lm, questions, responses, construction, model, runtime) -> list[str | None]:
    """With ``construction.extractor: llm`` the subject model (or ``llm_extractor.model``) reads off the answer."""
    extractor = construction.get("extractor", "rules")
    if extractor == "rules":
        return [None] * len(responses)
    if extractor != "llm":
        raise ValueError(f"construction.extractor must be 'rules' or 'llm', got {extractor!r}")
    options = construction.get("llm_extractor") or {}
    reader = load_language_model(options["model"]) if options.get("model") else lm
    prompts = [chat_prompt(reader.tokenizer, extractor_messages(q["question"], r)) for q, r in zip(questions, responses)]
    settings = _settings(model, max_new_tokens=options.get("max_new_tokens", 16))
    outputs = generate_texts(reader, prompts, settings, runtime.get("resume_dir"), "extract answers", runtime.get("show_progress", True))
    if reader is not lm:
        load_language_model(model)  # the subject model is needed again for the next seed
    return outputs


def verify_answers(
    samples: pl.DataFrame,
    train_questions: pl.DataFrame,
    test_questions: pl.DataFrame,
    shots: list[dict[str, str]],
    testbed: dict[str, Any],
    construction: dict[str, Any],
    model: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """Ask the model the verification question about each distinct answer it gave, after ``shots``
    (worked examples). ``confirmed`` means the response names the question's value."""
    verification = testbed["verification"]
    by_split = {"train": train_questions.to_dicts(), "test": test_questions.to_dicts()}
    distinct = (
        samples.filter(pl.col("status") == STATUS_OK)
        .group_by(["split", "index", "name"], maintain_order=True)
        .agg(pl.col("result").first(), pl.len().alias("times_sampled"))
    )
    lm = load_language_model(model)
    rows, prompts = [], []
    for entry in distinct.iter_rows(named=True):
        question = _question(by_split, entry["split"], entry["index"])
        messages = shots + [{"role": "user", "content": verification["template"].format(name=entry["name"], **question)}]
        prompts.append(chat_prompt(lm.tokenizer, messages))
        rows.append({**entry, "verification_question": messages[-1]["content"]})
    settings = _settings(model, max_new_tokens=construction["verification_max_new_tokens"])
    responses = generate_texts(lm, prompts, settings, runtime.get("resume_dir"), "verify answers", runtime.get("show_progress", True))
    for row, response in zip(rows, responses):
        question = _question(by_split, row["split"], row["index"])
        row["verification_response"] = response
        distractors = question.get(verification.get("distractor_field") or "", None) or []
        row["confirmed"] = mentions_any(response, constraint_values(question, verification), distractors)
        row["kept"] = row["confirmed"] == row["result"]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(
        schema={"split": pl.String, "index": pl.Int64, "name": pl.String, "result": pl.Boolean, "kept": pl.Boolean}
    )


def _all_constraint_values(questions: list[dict[str, Any]], testbed: dict[str, Any]) -> list[str]:
    """Every value the testbed's constraint takes (all countries of the city questions, say)."""
    verification = testbed["verification"]
    return sorted({value for question in questions for value in constraint_values(question, verification)})


def verification_shots(train_questions: pl.DataFrame, testbed: dict[str, Any], construction: dict[str, Any]) -> list[dict[str, str]]:
    """Worked examples for a testbed without a curated source: gold answers of its own training
    questions with the value they must be linked to (no fact is hand-written)."""
    verification, seed = testbed["verification"], construction["seed"]
    train = train_questions.to_dicts()
    shots: list[dict[str, str]] = [{"role": "system", "content": verification["system"]}]
    candidates = [q for q in train if q.get("answers")]
    for question in random.Random(f"{seed}-shots").sample(candidates, min(verification.get("shots", 2), len(candidates))):
        shots.append({"role": "user", "content": verification["template"].format(name=question["answers"][0], **question)})
        shots.append({"role": "assistant", "content": str(question[verification["expected_field"]])})
    return shots


def build_continuation_sets(
    samples: pl.DataFrame,
    verified: pl.DataFrame,
    train_questions: pl.DataFrame,
    test_questions: pl.DataFrame,
    testbed: dict[str, Any],
    construction: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """Keep verified answers, deduplicate, cap per question, balance, and write the paper's schema."""
    by_split = {"train": train_questions.to_dicts(), "test": test_questions.to_dicts()}
    response_field = testbed["verification"]["response_field"]
    rng = random.Random(f"{construction['seed']}-balance")
    counts = _stage_counts(samples, verified)
    sets: dict[str, list[dict[str, Any]]] = {}
    kept = verified.filter(pl.col("kept")) if verified.height else verified
    for split in SPLITS:
        chosen = kept.filter(pl.col("split") == split).to_dicts() if kept.height else []
        per_question: Counter = Counter()
        rows = []
        for entry in chosen:
            if per_question[entry["index"]] >= construction["max_answers_per_question"]:
                continue
            per_question[entry["index"]] += 1
            question = _question(by_split, split, entry["index"])
            row = {k: v for k, v in question.items() if k != "answers"}
            row.update({
                "messages": list(question["messages"]) + [{"role": "assistant", "content": entry["name"]}],
                "name": entry["name"], "result": bool(entry["result"]), "index": entry["index"],
                response_field: entry["verification_response"],
            })  # fmt: skip
            rows.append(row)
        if split != "train" or construction.get("balance_train", True):
            rows = _balance(rows, rng)
        sets[split] = rows
        counts[f"{split}_kept_correct"] = sum(r["result"] for r in rows)
        counts[f"{split}_kept_wrong"] = sum(not r["result"] for r in rows)
    empty = [f"{split} {label}" for split in ("train", "test") for label in ("correct", "wrong") if not counts[f"{split}_kept_{label}"]]
    if empty:
        raise ConstructionError(
            f"Testbed construction left no {', no '.join(empty)} answers; per-stage counts: {counts}. "
            "Sample more (construction.sample_seeds, max_questions_per_split) or use a model that knows more of these facts."
        )
    summary = {"counts": counts, "free_answer_accuracy": counts["correct"] / max(counts["ok"], 1)}
    metrics = {name: {"value": float(value), "step": 0} for name, value in {**counts, "free_answer_accuracy": summary["free_answer_accuracy"]}.items()}
    return rows_to_frame(sets["train"]), rows_to_frame(sets["val"]), rows_to_frame(sets["test"]), summary, metrics


def _balance(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Shuffle positives and negatives and keep min(count) of each, as the paper does globally."""
    positives = [r for r in rows if r["result"]]
    negatives = [r for r in rows if not r["result"]]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    keep = min(len(positives), len(negatives))
    return sorted(positives[:keep] + negatives[:keep], key=lambda r: (r["index"], r["name"]))


def _stage_counts(samples: pl.DataFrame, verified: pl.DataFrame) -> dict[str, int]:
    status = Counter(samples["status"].to_list())
    counts = {
        "questions": samples.select(["split", "index"]).unique().height,
        "samples": samples.height,
        "idk": status.get(STATUS_IDK, 0),
        "invalid": status.get(STATUS_INVALID, 0),
        "ok": status.get(STATUS_OK, 0),
        "correct": int(samples.filter(pl.col("status") == STATUS_OK)["result"].sum()),
        "distinct_answers": verified.height,
    }
    if verified.height:
        counts["confirmed_correct"] = int(verified.filter(pl.col("result") & pl.col("kept")).height)
        counts["contradicted_wrong"] = int(verified.filter(~pl.col("result") & pl.col("kept")).height)
    else:
        counts["confirmed_correct"] = counts["contradicted_wrong"] = 0
    return counts
