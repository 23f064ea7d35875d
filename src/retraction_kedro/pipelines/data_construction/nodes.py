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

from retraction_kedro.config.parameters import (
    ConstructionParameters,
    ModelParameters,
    PaperDataParameters,
    QuestionSource,
    RuntimeParameters,
    TestbedParameters,
    TruthfulnessParameters,
    WorldParameters,
)
from retraction_kedro.datasets import rows_to_frame
from retraction_kedro.evidence import flatten
from retraction_kedro.lm import GenerationSettings, chat_prompt, generate_texts, load_language_model, sample_texts
from retraction_kedro.pipelines.chat_models import ask
from retraction_kedro.sources.paper import fetch_paper_files
from retraction_kedro.world import embedded_builder, mentions_any, name_matches, normalize_name

from .selection import select_by_class
from .answers import REJECTIONS, STATUS_IDK, STATUS_INVALID, STATUS_OK, extractor_messages, read_answer, read_llm_answer

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class ConstructionError(RuntimeError):
    """A construction stage left a class empty; the message carries the per-stage counts."""


# ---------------------------------------------------------------- question sources


def _manifest(name: str, source: QuestionSource, train: int, test: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": source.model_dump(exclude_none=True), "rows": {"train": train, "test": test}, **extra}


def build_embedded_questions(world: dict[str, Any], testbed: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, str]], dict[str, Any]]:
    """A testbed of the embedded world: free questions, and worked verification examples on
    well-known facts asked with the testbed's own template."""
    entry = TestbedParameters.parse(testbed, "testbed")
    settings = WorldParameters.parse(world, "world")
    builder = embedded_builder(entry.source.embedded)
    train, test = builder.tables(settings.model_dump())
    verification = entry.verification
    shots: list[dict[str, str]] = [{"role": "system", "content": verification.system}]
    for subject, value in builder.facts(settings.seed, verification.shots):
        shots += [{"role": "user", "content": verification.template.format(name=subject)}, {"role": "assistant", "content": value}]
    logger.info("Embedded questions (%s): %d train, %d test", entry.source.embedded, len(train), len(test))
    return rows_to_frame(train), rows_to_frame(test), shots, _manifest(entry.source.embedded, entry.source, len(train), len(test))


def build_embedded_truthfulness(world: dict[str, Any], truthfulness: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """A labelled truthfulness set of the embedded world."""
    entry = TruthfulnessParameters.parse(truthfulness, "truthfulness")
    train, test = embedded_builder(entry.source.embedded, truthfulness=True).tables(WorldParameters.parse(world, "world").model_dump())
    return rows_to_frame(train), rows_to_frame(test), _manifest(entry.source.embedded, entry.source, len(train), len(test))


def fetch_paper_questions(paper_data: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """The paper's two files of a source under ``paper_data.root`` (downloaded when online and missing)."""
    settings = PaperDataParameters.parse(paper_data, "paper_data")
    parsed = QuestionSource.parse(source, "source")
    options = {"allow_download": settings.allow_download, "timeout": settings.timeout}
    if settings.base_url:
        options["base_url"] = settings.base_url
    paths = fetch_paper_files(settings.root, [parsed.paper["train"], parsed.paper["test"]], **options)
    rows = {split: sum(1 for _ in open(paths[key], encoding="utf-8")) for split, key in parsed.paper.items()}
    return _manifest("paper", parsed, rows["train"], rows["test"], files={key: str(path) for key, path in sorted(paths.items())})


def describe_question_files(train_questions: pl.DataFrame, test_questions: pl.DataFrame, testbed: dict[str, Any]) -> dict[str, Any]:
    """Check a testbed's own question files beyond their fields: every row has answers and a constraint value."""
    entry = TestbedParameters.parse(testbed, "testbed")
    for split, frame in (("train", train_questions), ("test", test_questions)):
        path = entry.source.files[split] if entry.source.files else split
        for number, row in enumerate(frame.iter_rows(named=True), start=1):
            answers = row["answers"]
            if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
                raise ValueError(f"{path}, row {number}: field 'answers' must be a non-empty list of names, got {answers!r:.80}")
            if not entry.constraint_values(row):
                raise ValueError(f"{path}, row {number}: field {entry.constraint_field!r} (the testbed's constraint_field) is empty")
            messages = row["messages"]
            if not messages or messages[-1].get("role") != "user":
                raise ValueError(f"{path}, row {number}: field 'messages' must end with the user's question")
    return _manifest("files", entry.source, train_questions.height, test_questions.height)


def describe_truthfulness_files(train_questions: pl.DataFrame, test_questions: pl.DataFrame) -> dict[str, Any]:
    """Check a truthfulness set of one's own: labels are 0/1 and each split holds both."""
    counts = {}
    for split, frame in (("train", train_questions), ("test", test_questions)):
        labels = frame["label"].to_list()
        bad = next((number for number, label in enumerate(labels, start=1) if label not in (0, 1) or isinstance(label, float)), None)
        if bad is not None:
            raise ValueError(f"truthfulness {split} questions, row {bad}: field 'label' must be 0 or 1, got {labels[bad - 1]!r}")
        if len(set(labels)) < 2:
            raise ValueError(f"truthfulness {split} questions hold only label {labels[0] if labels else None!r}; probes need both 0 and 1")
        counts[split] = len(labels)
    return {"name": "files", "rows": counts}


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


def _generation(model: ModelParameters, **settings: Any) -> GenerationSettings:
    return GenerationSettings(batch_size=model.batch_size, **settings)


def sample_answers(
    train_questions: pl.DataFrame,
    test_questions: pl.DataFrame,
    source_manifest: dict[str, Any],
    testbed: dict[str, Any],
    construction: dict[str, Any],
    model: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """Sample free answers (temperature, several seeds), extract the first answer, judge correctness.

    ``source_manifest`` orders sampling after the question source (a download, a build)."""
    entry = TestbedParameters.parse(testbed, "testbed")
    recipe = ConstructionParameters.parse(construction, "construction")
    model_settings, run = ModelParameters.parse(model, "model"), RuntimeParameters.parse(runtime, "runtime")
    questions = _questions(train_questions, "train", recipe.max_questions_per_split, recipe.seed)
    questions += _questions(test_questions, "test", recipe.max_questions_per_split, recipe.seed)
    _split_val([q for q in questions if q["split"] == "train"], recipe.val_fraction, recipe.seed)
    rejected = _constraint_names(train_questions, test_questions, entry) if entry.reject_constraint_values else set()
    lm = load_language_model(model_settings.spec)
    prompts = [chat_prompt(lm.tokenizer, q["messages"]) for q in questions]
    rows: list[dict[str, Any]] = []
    sample_seeds = entry.sample_seeds or recipe.sample_seeds
    settings = _generation(model_settings, max_new_tokens=recipe.answer_max_new_tokens, do_sample=True, temperature=recipe.temperature,
                           top_p=recipe.top_p)  # fmt: skip
    sampled = sample_texts(lm, prompts, settings, sample_seeds, run.resume_dir, f"sample answers (seeds {sample_seeds})", run.show_progress)
    for sample_seed, responses in sampled.items():
        extracted = _extract_with_llm(lm, questions, responses, recipe, model_settings, run)
        for question, response, output in zip(questions, responses, extracted):
            if output is None:
                name, status, reason = read_answer(response, entry.min_name_words, entry.max_name_words)
            else:
                name, status, reason = read_llm_answer(output, response, entry.min_name_words, entry.max_name_words)
            result = bool(name) and name_matches(name, question["answers"])
            if name and not result and normalize_name(name) in rejected:
                name, status, reason = None, STATUS_INVALID, "constraint_value"  # a state named where a city was asked for
            rows.append({
                "split": question["split"], "index": question["index"], "sample_seed": sample_seed,
                "response": response, "name": name, "status": status, "result": result,
                "reason": reason,
            })  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"name": pl.String, "reason": pl.String}, infer_schema_length=None)


def _extract_with_llm(lm, questions, responses, recipe: ConstructionParameters, model: ModelParameters, run: RuntimeParameters) -> list[str | None]:
    """With ``construction.extractor`` local or server, a chat model reads off the first answer
    (``llm_extractor.model``, by default the model under study, or a server); ``None`` where none was asked."""
    if recipe.extractor == "rules":
        return [None] * len(responses)
    conversations = [extractor_messages(q["question"], r) for q, r in zip(questions, responses)]
    replies = ask(conversations, recipe.extractor, recipe.llm_extractor, "construction.llm_extractor", run, "extract answers",
                  stop_at_newline=True, default_model=model)  # fmt: skip
    return ["NONE" if reply is None else reply for reply in replies]  # a failed reply reads as no answer: invalid, counted


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
    entry = TestbedParameters.parse(testbed, "testbed")
    recipe = ConstructionParameters.parse(construction, "construction")
    model_settings, run = ModelParameters.parse(model, "model"), RuntimeParameters.parse(runtime, "runtime")
    by_split = {"train": train_questions.to_dicts(), "test": test_questions.to_dicts()}
    distinct = (
        samples.filter(pl.col("status") == STATUS_OK)
        .group_by(["split", "index", "name"], maintain_order=True)
        .agg(pl.col("result").first(), pl.len().alias("times_sampled"))
    )
    lm = load_language_model(model_settings.spec)
    rows, prompts = [], []
    for row in distinct.iter_rows(named=True):
        question = _question(by_split, row["split"], row["index"])
        messages = shots + [{"role": "user", "content": _verification_question(entry.verification.template, row["name"], question)}]
        prompts.append(chat_prompt(lm.tokenizer, messages))
        rows.append({**row, "verification_question": messages[-1]["content"]})
    settings = _generation(model_settings, max_new_tokens=recipe.verification_max_new_tokens)
    responses = generate_texts(lm, prompts, settings, run.resume_dir, "verify answers", run.show_progress)
    for row, response in zip(rows, responses):
        question = _question(by_split, row["split"], row["index"])
        row["verification_response"] = response
        distractors = question.get(entry.distractor_field or "", None) or []
        row["confirmed"] = mentions_any(response, entry.constraint_values(question), distractors)
        row["kept"] = row["confirmed"] == row["result"]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(
        schema={"split": pl.String, "index": pl.Int64, "name": pl.String, "result": pl.Boolean, "kept": pl.Boolean}
    )


def _constraint_names(train_questions: pl.DataFrame, test_questions: pl.DataFrame, testbed: TestbedParameters) -> set[str]:
    """Every value the testbed's constraint takes, aliases included, normalized (all states of the city
    questions, say). Compared by normalized equality: "Kuwait City" is a city, not the country "Kuwait"."""
    rows = [*train_questions.iter_rows(named=True), *test_questions.iter_rows(named=True)]
    return {normalize_name(value) for row in rows for value in testbed.constraint_values(row)} - {""}


def question_file_shots(
    train_questions: pl.DataFrame, source_manifest: dict[str, Any], testbed: dict[str, Any], construction: dict[str, Any]
) -> list[dict[str, str]]:
    """Worked examples for a testbed read from files: gold answers of its own training questions with
    the value they must be linked to (no fact is hand-written). ``source_manifest`` orders this after
    the files are fetched."""
    entry = TestbedParameters.parse(testbed, "testbed")
    verification, seed = entry.verification, ConstructionParameters.parse(construction, "construction").seed
    train = train_questions.to_dicts()
    shots: list[dict[str, str]] = [{"role": "system", "content": verification.system}]
    candidates = [q for q in train if q.get("answers")]
    for question in random.Random(f"{seed}-shots").sample(candidates, min(verification.shots, len(candidates))):
        shots.append({"role": "user", "content": _verification_question(verification.template, question["answers"][0], question)})
        shots.append({"role": "assistant", "content": str(question[entry.constraint_field])})
    return shots


def _verification_question(template: str, name: str, question: dict[str, Any]) -> str:
    try:
        return template.format(**{**question, "name": name})
    except KeyError as error:
        raise ValueError(f"Parameter verification.template {template!r} names the field {error.args[0]!r}, which the questions lack") from None


def build_continuation_sets(
    samples: pl.DataFrame,
    verified: pl.DataFrame,
    train_questions: pl.DataFrame,
    test_questions: pl.DataFrame,
    testbed: dict[str, Any],
    construction: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """Keep verified answers, deduplicate, cap per question, select per split (balanced, or capped per
    class), and write the paper's schema.

    Train and test must keep both classes: an empty one stops the run, naming the stage that emptied it. Val may
    be empty or hold one class (nothing in the pipelines reads it); that is logged as a warning with the counts
    and listed under the summary's ``warnings``, never left unsaid.
    """
    entry = TestbedParameters.parse(testbed, "testbed")
    recipe = ConstructionParameters.parse(construction, "construction")
    by_split = {"train": train_questions.to_dicts(), "test": test_questions.to_dicts()}
    response_field = entry.verification.response_field
    rng = random.Random(f"{recipe.seed}-balance")
    counts = _stage_counts(samples, verified)
    stages = _split_stages(samples, verified)
    sets: dict[str, list[dict[str, Any]]] = {}
    kept = verified.filter(pl.col("kept")) if verified.height else verified
    for split in SPLITS:
        chosen = kept.filter(pl.col("split") == split).to_dicts() if kept.height else []
        per_question: Counter = Counter()
        rows = []
        for answer in chosen:
            if per_question[answer["index"]] >= recipe.max_answers_per_question:
                continue
            per_question[answer["index"]] += 1
            question = _question(by_split, split, answer["index"])
            row = {k: v for k, v in question.items() if k != "answers"}
            row.update({
                "messages": list(question["messages"]) + [{"role": "assistant", "content": answer["name"]}],
                "name": answer["name"], "result": bool(answer["result"]), "index": answer["index"],
                response_field: answer["verification_response"],
            })  # fmt: skip
            rows.append(row)
        rows = select_by_class(rows, recipe.splits[split], rng)
        sets[split] = rows
        counts[f"{split}_kept_correct"] = stages[split]["kept_correct"] = sum(r["result"] for r in rows)
        counts[f"{split}_kept_wrong"] = stages[split]["kept_wrong"] = sum(not r["result"] for r in rows)
    required = {split: _emptied(stages[split], split) for split in ("train", "test")}
    if any(required.values()):
        empty = [f"{split} {label}" for split, where in required.items() for label in where]
        why = "; ".join(f"{split} {label}: {text}" for split, where in required.items() for label, text in where.items())
        raise ConstructionError(
            f"Testbed construction left no {', no '.join(empty)} answers ({why}); per-stage counts: {counts}, "
            f"per split: {stages}. Sample more (construction.sample_seeds, max_questions_per_split) or use a model "
            "that knows more of these facts."
        )
    warnings = _val_warnings(stages["val"], recipe.val_fraction)
    for warning in warnings:
        logger.warning("%s", warning)
    ok = counts["ok"]
    summary = {
        "counts": counts,
        "rejected": _rejections(samples),
        "by_split": stages,
        "free_answer_accuracy": counts["correct"] / ok if ok else None,  # undefined without a usable answer
        "warnings": warnings,
    }
    numbers = flatten({key: summary[key] for key in ("counts", "rejected", "by_split")}, drop_undefined=True)
    numbers = {name.removeprefix("counts."): value for name, value in numbers.items()}  # counts keep their bare names
    if summary["free_answer_accuracy"] is not None:
        numbers["free_answer_accuracy"] = summary["free_answer_accuracy"]
    metrics = {name: {"value": float(value), "step": 0} for name, value in numbers.items()}
    return rows_to_frame(sets["train"]), rows_to_frame(sets["val"]), rows_to_frame(sets["test"]), summary, metrics


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


def _rejections(samples: pl.DataFrame) -> dict[str, int | None]:
    """How many sampled responses each rule rejected (``answers.REJECTIONS``); None for every rule when the
    samples come from a run that did not record reasons (its ``invalid`` count still holds)."""
    if "reason" not in samples.columns:
        return dict.fromkeys(REJECTIONS)
    found = Counter(reason for reason in samples["reason"].to_list() if reason is not None)
    unknown = sorted(set(found) - set(REJECTIONS))
    if unknown:
        raise ValueError(f"answer_samples: field 'reason' holds {unknown[0]!r}, not one of {list(REJECTIONS)}")
    return {reason: found.get(reason, 0) for reason in REJECTIONS}


def _split_stages(samples: pl.DataFrame, verified: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per split, each class through the stages: usable sampled answers, distinct answers verified, answers the
    verification kept (right ones confirmed, wrong ones contradicted); the node adds what selection kept."""
    ok = samples.filter(pl.col("status") == STATUS_OK)
    stages = {}
    for split in SPLITS:
        mine, answers = samples.filter(pl.col("split") == split), ok.filter(pl.col("split") == split)
        checked = verified.filter(pl.col("split") == split) if verified.height else verified
        right = int(answers["result"].sum()) if answers.height else 0
        stages[split] = {
            "questions": mine.select("index").unique().height,
            "samples": mine.height,
            "answers_correct": right,
            "answers_wrong": answers.height - right,
            "distinct_correct": checked.filter(pl.col("result")).height if checked.height else 0,
            "distinct_wrong": checked.filter(~pl.col("result")).height if checked.height else 0,
            "confirmed_correct": checked.filter(pl.col("result") & pl.col("kept")).height if checked.height else 0,
            "contradicted_wrong": checked.filter(~pl.col("result") & pl.col("kept")).height if checked.height else 0,
        }
    return stages


def _emptied(stage: dict[str, int], split: str) -> dict[str, str]:
    """For each class a split ends without, the stage that emptied it, in words with its counts."""
    where = {}
    for label, verified_key, verb in (("correct", "confirmed_correct", "confirmed"), ("wrong", "contradicted_wrong", "contradicted")):
        if stage[f"kept_{label}"]:
            continue
        if not stage["questions"]:
            where[label] = "the split has no question"
        elif not stage[f"answers_{label}"]:
            where[label] = f"none among {stage['samples']} sampled answers"
        elif not stage[verified_key]:
            where[label] = f"0 of {stage[f'distinct_{label}']} distinct {label} answers {verb} at verification"
        else:
            where[label] = f"{stage[verified_key]} {verb}, none selected by construction.splits.{split}"
    return where


def _val_warnings(stage: dict[str, int], val_fraction: float) -> list[str]:
    """Val is optional (nothing in the pipelines reads it): an empty class there is a warning, not a stop."""
    if not val_fraction:
        return []  # no val asked for (construction.val_fraction 0): empty as requested
    return [
        f"continuation_val keeps no {label} answer ({text}; construction.val_fraction {val_fraction}); "
        f"val per stage: {stage}"
        for label, text in _emptied(stage, "val").items()
    ]
