"""Typed parameter groups: each YAML group is parsed once into one of these objects.

A wrong key, a wrong type or an impossible value fails with one line naming the parameter and
the value (``ParameterError``), before any model loads: the preflight hook parses every group a
pipeline reads, and nodes parse their own group at their top.

Why nodes receive dicts and parse them, instead of Kedro's typed node parameters: kedro-mlflow
logs node parameters flattened (``probing.batch_size``) only when they are dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ParameterError(ValueError):
    """A parameter group that cannot be used as written; the message is one line."""


def _location(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _one_line(error: ValidationError, where: str) -> str:
    problems = []
    for item in error.errors(include_url=False):
        location = f"{where}{_location(tuple(p for p in item['loc'] if not str(p).startswith('function-')))}"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            problems.append(f"{location}: missing")
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{location}: {message} (got {item['input']!r:.120})")
    return "Parameter " + "; ".join(problems)


class Parameters(BaseModel):
    """Base of every group: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | Self, where: str) -> Self:
        """``where`` is the group's parameter key (``interventions``, ``testbeds.geo_city``)."""
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, Mapping):
            raise ParameterError(f"Parameter {where}: expected a mapping, got {raw!r}")
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as error:
            raise ParameterError(_one_line(error, where)) from None


# ---------------------------------------------------------------- shared


class RuntimeParameters(Parameters):
    resume_dir: str | None = None
    show_progress: bool = True


class ModelParameters(Parameters):
    """``model``: what ``retraction_kedro.lm.ModelSpec`` takes, checked by it, plus the batch size of model work."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    batch_size: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _a_loadable_spec(self) -> Self:
        self.spec.resolved_dtype()  # also resolves the device: cuda asked for on a machine without it fails here
        return self

    @property
    def spec(self):
        from retraction_kedro.lm import ModelSpec

        return ModelSpec.from_params(self.model_dump())


class EvidenceParameters(Parameters):
    """Bootstrap intervals (AUROC, kappa, paired differences): the same seed gives the same intervals."""

    seed: int = 0
    resamples: int = Field(1000, ge=100)


# ---------------------------------------------------------------- the registry: studies, truthfulness sets, testbeds


class QuestionSource(Parameters):
    """Exactly one of: a builder of the embedded world, question files of one's own, the paper's files."""

    embedded: str | None = None
    files: dict[Literal["train", "test"], str] | None = None
    paper: dict[Literal["train", "test"], str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [kind for kind in ("embedded", "files", "paper") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of embedded, files, paper (given: {given or 'none'})")
        for kind in ("files", "paper"):
            splits = getattr(self, kind)
            if splits is not None and set(splits) != {"train", "test"}:
                raise ValueError(f"{kind} needs a train and a test entry")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ("embedded", "files", "paper") if getattr(self, kind) is not None)


class VerificationParameters(Parameters):
    """The verification question asked about each sampled answer ``{name}`` (row fields may be used)."""

    system: str
    template: str
    response_field: str
    shots: int = Field(2, ge=0)

    @field_validator("template")
    @classmethod
    def _names_the_answer(cls, value: str) -> str:
        if "{name}" not in value:
            raise ValueError("must contain {name}, the sampled answer")
        return value


class TestbedParameters(Parameters):
    """One registry entry under ``testbeds``: everything that makes a question set a testbed."""

    study: str
    truthfulness: str
    source: QuestionSource
    constraint_field: str  # the value a question constrains its answer to (a country, a currency, a parent)
    alias_field: str | None = None  # other names of that value ("JPY" for "Yen")
    distractor_field: str | None = None  # longer names that contain the value ("South Sudan" for "Sudan")
    # An answer that is a value of the constraint (or an alias) is invalid unless it is right for its question: a
    # state named where a city was asked for. Off only where answers and constraint values are the same kind of
    # thing (people and their parents), so that a constraint value can be a real wrong answer.
    reject_constraint_values: bool = True
    min_name_words: int = Field(1, ge=1)
    max_name_words: int = Field(6, ge=1)
    sample_seeds: list[int] | None = None  # null: construction.sample_seeds
    finetune: bool = True  # the sft pipeline trains a model on this testbed
    judge_validation: str | None = None  # JSONL of continuations labelled by reading: the judge is scored against it
    verification: VerificationParameters

    @model_validator(mode="after")
    def _word_range(self) -> Self:
        if self.min_name_words > self.max_name_words:
            raise ValueError(f"min_name_words {self.min_name_words} exceeds max_name_words {self.max_name_words}")
        if self.sample_seeds is not None and not self.sample_seeds:
            raise ValueError("sample_seeds must not be empty (null uses construction.sample_seeds)")
        return self

    def constraint_values(self, row: Mapping[str, Any]) -> list[str]:
        """The question's constraint value and its aliases, as strings."""
        values: list[str] = []
        for field in (self.constraint_field, self.alias_field):
            value = row.get(field) if field else None
            if value is not None:
                values += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        return values


class TruthfulnessParameters(Parameters):
    """One registry entry under ``truthfulness_sets``: labelled QA the belief probes learn from."""

    source: QuestionSource


class StudyParameters(Parameters):
    """One registry entry under ``studies``: a group of testbeds with one report."""

    default: bool = False  # the study `kedro run` runs (pipelines without a suffix)
    finetuned_interventions: bool = False  # also steer and patch each fine-tuned model


# ---------------------------------------------------------------- construction


class WorldParameters(Parameters):
    seed: int = 0
    min_city_population: int = Field(100_000, ge=0)
    min_answers: int = Field(3, ge=1)
    test_fraction: float = Field(0.5, gt=0, lt=1)
    truthfulness_per_relation: int = Field(600, ge=4)
    truthfulness_relations: list[str]


class PaperDataParameters(Parameters):
    root: str = "data/01_raw/paper"
    allow_download: bool = True
    base_url: str | None = None
    timeout: float = Field(30, gt=0)
    released_model: str | None = None  # conf/paper_released: the released folder when model.name does not end in it


class ChatModelParameters(Parameters):
    """A chat model asked without hooks (the judge, the answer extractor): loaded in the node (``model``)
    or behind an OpenAI-compatible server (``server``: ``retraction_kedro.serving.ChatServerSettings``)."""

    model: dict[str, Any] | None = None
    max_new_tokens: int = Field(16, ge=1)
    server: dict[str, Any] | None = None

    @field_validator("server")
    @classmethod
    def _server(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from retraction_kedro.serving import ChatServerSettings

            ChatServerSettings.from_params(value, name="server")
        return value

    def server_settings(self, name: str):
        """The server's settings, ``max_new_tokens`` as ``max_tokens`` unless the server block sets it."""
        from retraction_kedro.serving import ChatServerSettings

        if self.server is None:
            raise ParameterError(f"Parameter {name}.server: missing (the server backend needs base_url and model)")
        return ChatServerSettings.from_params({"max_tokens": self.max_new_tokens, **self.server}, name=f"{name}.server")


class SplitSelection(Parameters):
    """Which kept answers of a split enter its continuation set: balanced (min of both classes, the paper's
    train sets), or every one up to a cap per class (the paper keeps unbalanced test sets where correct
    answers are scarce)."""

    balance: bool = False
    max_wrong: int | None = Field(None, ge=1)
    max_correct: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _balance_or_caps(self) -> Self:
        if self.balance and (self.max_wrong or self.max_correct):
            raise ValueError("a balanced split takes no caps")
        return self


class ConstructionParameters(Parameters):
    seed: int = 0
    sample_seeds: list[int] = Field(min_length=1)
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    answer_max_new_tokens: int = Field(24, ge=1)
    verification_max_new_tokens: int = Field(16, ge=1)
    max_answers_per_question: int = Field(100, ge=1)
    max_questions_per_split: int | None = Field(None, ge=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    splits: dict[Literal["train", "val", "test"], SplitSelection] = Field(
        default_factory=lambda: {"train": SplitSelection(), "val": SplitSelection(), "test": SplitSelection()}
    )

    @field_validator("splits")
    @classmethod
    def _every_split(cls, value: dict) -> dict:
        if set(value) != {"train", "val", "test"}:
            raise ValueError(f"name train, val and test (got {sorted(value)})")
        return value
    extractor: Literal["rules", "local", "server"] = "rules"
    llm_extractor: ChatModelParameters = ChatModelParameters()


# ---------------------------------------------------------------- activations, evaluation, probing


class SamplingParameters(Parameters):
    """Sampled continuations beside the greedy ones (decoding sensitivity); no seeds: none are sampled."""

    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    seeds: list[int] = Field(default_factory=list)


class ActivationParameters(Parameters):
    max_new_tokens: int = Field(128, ge=1)
    suffix: str = ""
    layers: list[int] | None = None
    position: int = Field(-1, lt=0)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    sampling: SamplingParameters = SamplingParameters()


class EvaluationParameters(Parameters):
    judge: Literal["rules", "local", "server"] = "rules"
    llm_judge: ChatModelParameters

    @model_validator(mode="after")
    def _backend_configured(self) -> Self:
        if self.judge == "local" and self.llm_judge.model is None:
            raise ValueError("judge local needs llm_judge.model")
        if self.judge == "server" and self.llm_judge.server is None:
            raise ValueError("judge server needs llm_judge.server (base_url, model)")
        return self


class ProbeScheduleParameters(Parameters):
    from_layer: float = Field(ge=0, le=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    epochs: int = Field(ge=1)


class ProbingParameters(Parameters):
    trainer: Literal["batched", "sklearn"] = "batched"
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    standardize: bool = True
    schedules: list[ProbeScheduleParameters] = Field(min_length=1)
    select_epoch_on: Literal["validation", "test"] = "validation"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    sklearn_c: list[float] = Field(min_length=1)


# ---------------------------------------------------------------- sft


class SftTargets(Parameters):
    correct: str
    wrong: str

    @field_validator("correct", "wrong")
    @classmethod
    def _starts_with_the_answer(cls, value: str) -> str:
        if not value.startswith("{name}"):
            raise ValueError("must start with {name}, the answer the prompt ends with")
        return value


class SftParameters(Parameters):
    targets: SftTargets
    balance: bool = True  # train on as many right as wrong answers (the paper's balanced train sets), seeded by training.seed
    save_merged: bool = False
    training: dict[str, Any]

    @field_validator("training")
    @classmethod
    def _lora(cls, value: dict[str, Any]) -> dict[str, Any]:
        from retraction_kedro.lm import LoraSettings

        LoraSettings.from_params(value)
        return value
