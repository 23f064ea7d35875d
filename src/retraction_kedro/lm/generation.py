"""Batched, left-padded, resumable generation: the bare decode loop (``decoding``) or the static-cache path (``static_decoding``)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch

from .batching import BatchJournal, fingerprint, plan_batches, progress
from .decoding import NucleusSampler, StopRule, decode_stream, greedy, supports_refill
from .interventions import Intervention, attached
from .loading import LanguageModel
from .prefix import PromptBatch, batch_inputs, plan_prefix, suffix_tokens_needed
from .static_decoding import CompiledStepError, compiled_step_failure, decode_static, static_cache_supported

logger = logging.getLogger(__name__)

SAMPLING_SCHEME = "per-example-v2"  # in the journal key: journals of another scheme hold other samples or another format


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_newline: bool = True
    min_new_tokens: int = 0  # > 0 forces equal token counts (benchmarks)
    batch_size: int = 16
    share_prefix: bool = True  # run the prompts' common token prefix once per call

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> "GenerationSettings":
        merged = {**params, **overrides}
        unknown = sorted(set(merged) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"Unknown generation parameter(s) {unknown}; expected some of {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**merged)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens must be in 0..max_new_tokens ({self.max_new_tokens}), got {self.min_new_tokens}"
            )
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


@lru_cache(maxsize=8)
def newline_token_ids(tokenizer: Any) -> tuple[int, ...]:
    vocab = tokenizer.get_vocab()
    return tuple(sorted(i for i in vocab.values() if "\n" in tokenizer.decode([i])))


def end_of_turn_ids(lm: LanguageModel) -> list[int]:
    ids: set[int] = set()
    configured = lm.model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return sorted(ids)


def stop_rule(lm: LanguageModel, settings: GenerationSettings) -> StopRule:
    eos = end_of_turn_ids(lm)
    stops = set(eos) | (set(newline_token_ids(lm.tokenizer)) if settings.stop_at_newline else set())
    return StopRule(torch.tensor(sorted(stops)), torch.tensor(eos), settings.max_new_tokens, settings.min_new_tokens)


def example_seeds(prompts: Sequence[str], seed: int) -> list[int]:
    """One sampling seed per example from ``seed``, its prompt and which occurrence of that prompt it is.

    Batch size, batch order, the other prompts of the call and a resume leave it unchanged.
    """
    seen: Counter[str] = Counter()
    seeds = []
    for prompt in prompts:
        digest = hashlib.sha256(f"{seed}\x00{seen[prompt]}\x00{prompt}".encode()).digest()
        seeds.append(int.from_bytes(digest[:8], "little"))
        seen[prompt] += 1
    return seeds


def _trim(text: str, stop_at_newline: bool) -> str:
    return text.split("\n", 1)[0] if stop_at_newline else text


def generate_texts(
    lm: LanguageModel,
    prompts: Sequence[str],
    settings: GenerationSettings,
    resume_dir: str | None = None,
    desc: str = "generate",
    show_progress: bool = True,
    interventions: Sequence[Intervention] = (),
) -> list[str]:
    """Continue every prompt; results come back in input order."""
    return [
        text for text, _ in generate_with_counts(lm, prompts, settings, resume_dir, desc, show_progress, interventions)
    ]


def generate_with_counts(
    lm: LanguageModel,
    prompts: Sequence[str],
    settings: GenerationSettings,
    resume_dir: str | None = None,
    desc: str = "generate",
    show_progress: bool = True,
    interventions: Sequence[Intervention] = (),
    seeds: Sequence[int] | None = None,
) -> list[tuple[str, int]]:
    """(continuation, number of generated tokens, its stop token included) per prompt, in input order.

    Each example samples from its own random stream (:func:`example_seeds`), so the same seed
    gives the same samples at any batch size, in any order and after a resume. ``interventions``
    (steering, patching) are hooked in for this call only and are part of the resume journal's key.
    With ``share_prefix`` the prompts' common token prefix runs once (see ``prefix``); an
    intervention without a prompt ``position`` turns sharing off. ``seeds``: each example's sampling
    seed, given (see :func:`sample_texts`) instead of drawn from ``settings.seed``. Finished
    examples go to the resume journal as they end, so a rerun after a crash redoes only the others.
    """
    prompts = list(prompts)
    if not prompts:
        return []
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} sampling seeds for {len(prompts)} prompts")
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    given = [list(seeds)] if seeds is not None else []  # in the journal key only when given
    key = fingerprint(lm.spec, asdict(settings), prompts, [i.key() for i in interventions], SAMPLING_SCHEME, *given)
    if settings.do_sample:
        seeds = list(seeds) if seeds is not None else example_seeds(prompts, settings.seed)
    else:
        seeds = None
    journal = BatchJournal(resume_dir, "generate", key)
    results: dict[int, tuple[str, int]] = {} if any(i.records for i in interventions) else journal.finished_rows()
    order = [row for batch in plan_batches([len(row) for row in ids], settings.batch_size) for row in batch]
    pending = [row for row in order if row not in results]
    bar = progress(len(prompts), desc, show_progress, initial=len(results))
    start = time.perf_counter()

    def finish(done: list[tuple[int, list[int]]]) -> None:
        texts = lm.tokenizer.batch_decode([tokens for _, tokens in done], skip_special_tokens=True)
        pairs = {row: (_trim(text, settings.stop_at_newline), len(tokens)) for (row, tokens), text in zip(done, texts)}
        results.update(pairs)
        journal.record_rows(pairs)
        bar.update(len(pairs))

    if pending:
        positions = [getattr(i, "position", None) for i in interventions]
        prefix = None
        if None not in positions:  # before the hooks attach
            prefix = plan_prefix(lm, [ids[row] for row in pending], suffix_tokens_needed(positions), settings.share_prefix)
        if prefix is not None:
            logger.info("%s: the %d prompts share a prefix of %d tokens, run once", desc, len(pending), prefix.length)
        rule = stop_rule(lm, settings)
        sampler = NucleusSampler(seeds, settings.max_new_tokens, settings.temperature, settings.top_p) if seeds else None
        path = decoding_path(lm, interventions)
        logger.info("%s: %s decoding", desc, path.describe())

        def make_batch(rows: list[int]) -> PromptBatch:
            return batch_inputs(lm, [ids[row][prefix.length if prefix else 0 :] for row in rows], prefix, use_cache=True)

        try:
            path.run(lm, pending, make_batch, rule, sampler or greedy, settings.batch_size, finish, interventions)
        except CompiledStepError as error:
            if lm.spec.decoding != "auto":
                raise ValueError(f"model.decoding={lm.spec.decoding!r}: {error}; use 'static', 'loop' or 'auto'") from None
            logger.warning("%s: %s; this model decodes on the loop from here on", desc, error)
            rest = [row for row in pending if row not in results]
            DecodingPath(False).run(lm, rest, make_batch, rule, sampler or greedy, settings.batch_size, finish, interventions)
    bar.close()
    journal.close()
    counts = [results[row][1] for row in range(len(prompts))]
    logger.info(
        "%s: %d prompts, %d tokens generated (mean %.1f, max %d, %d at the limit of %d) in %.1f s",
        desc, len(prompts), sum(counts), sum(counts) / len(counts), max(counts),
        sum(count == settings.max_new_tokens for count in counts), settings.max_new_tokens, time.perf_counter() - start,
    )  # fmt: skip
    return [results[row] for row in range(len(prompts))]


@contextmanager
def _prompt_pass(rows: list[int], batch: PromptBatch, interventions: Sequence[Intervention]) -> Iterator[None]:
    """The interventions see which input rows this prompt pass runs (and which keys are real), and each must act on it."""
    for intervention in interventions:
        intervention.start_batch(rows, batch.attention_mask)
    yield
    for intervention in interventions:
        intervention.check_fired()


@dataclass(frozen=True)
class DecodingPath:
    """Which decoder runs a call: the loop (continuous batching), or the static cache (``compile_mode``: its compiled
    step) in plain batches."""

    static: bool
    compile_mode: str | None = None
    reason: str = ""

    def describe(self) -> str:
        name = "static-cache" + (f", compiled ({self.compile_mode})" if self.compile_mode else "") if self.static else "loop"
        return name + (f" ({self.reason})" if self.reason else "")

    def run(self, lm, rows, make_batch, rule, choose, batch_size, finish, interventions) -> None:
        """Generate for input ``rows`` (in this order), handing each finished row's tokens to ``finish``."""
        if not self.static:
            with attached(lm, interventions):  # every-token steering acts on the decode steps too
                decode_stream(
                    lm.model, rows, make_batch, rule, choose, batch_size, finish,
                    prompt_pass=lambda group, batch: _prompt_pass(group, batch, interventions),
                    on_steps=lambda running: [i.start_steps(running) for i in interventions],
                    refill=supports_refill(lm.model),
                )  # fmt: skip
            return
        for first in range(0, len(rows), batch_size):
            group = list(rows[first : first + batch_size])
            batch = make_batch(group)
            with ExitStack() as hooks:  # attached for the prompt pass; the static path takes them off after it
                hooks.enter_context(attached(lm, interventions))
                hooks.enter_context(_prompt_pass(group, batch, interventions))
                tokens = decode_static(lm.model, batch, rule, choose, self.compile_mode, hooks.close, batch_size, group)
            finish(list(zip(group, tokens)))


def decoding_path(lm: LanguageModel, interventions: Sequence[Intervention] = ()) -> DecodingPath:
    """``model.decoding``: auto (the compiled static cache on CUDA where it can run, else the loop), loop, static
    (uncompiled), compiled (``torch.compile``: CUDA graphs of inductor's kernels on CUDA, inductor on the CPU),
    cudagraphs (CUDA graphs of the eager kernels: no kernel compilation, a faster first call).

    The static path cannot run sliding-window models, nor interventions that act on every generated token.
    """
    asked = lm.spec.decoding
    if asked == "loop":
        return DecodingPath(False)
    unsupported = static_cache_supported(lm.model)
    if unsupported is None and any(getattr(i, "every_token", False) for i in interventions):
        unsupported = "an intervention acts on every token"
    cuda = lm.device.type == "cuda"
    if unsupported is None and compiled_step_failure(lm.model) and asked in ("auto", "compiled", "cudagraphs"):
        unsupported = f"its compiled decode step failed earlier ({compiled_step_failure(lm.model)})"
    if asked == "auto":
        if not cuda:
            return DecodingPath(False)
        if unsupported is not None:
            return DecodingPath(False, reason=f"the static path cannot run this: {unsupported}")
        return DecodingPath(True, "reduce-overhead")
    if unsupported is not None:
        raise ValueError(f"model.decoding={asked!r} cannot run this call: {unsupported}; use 'loop' or 'auto'")
    if asked == "cudagraphs" and not cuda:
        raise ValueError("model.decoding='cudagraphs' needs a CUDA device; use 'compiled' or 'static' on the CPU")
    modes = {"static": None, "compiled": "reduce-overhead" if cuda else "inductor", "cudagraphs": "cudagraphs"}
    return DecodingPath(True, modes[asked])


def sample_texts(
    lm: LanguageModel,
    prompts: Sequence[str],
    settings: GenerationSettings,
    sample_seeds: Sequence[int],
    resume_dir: str | None = None,
    desc: str = "sample",
    show_progress: bool = True,
) -> dict[int, list[str]]:
    """The prompts sampled once per seed, all in one call so that batches fill across seeds; each
    seed's texts are those of a call of its own with ``settings.seed`` = that seed."""
    if not settings.do_sample:
        raise ValueError("sample_texts needs settings.do_sample")
    prompts = list(prompts)
    seeds = [s for sample_seed in sample_seeds for s in example_seeds(prompts, sample_seed)]
    texts = [text for text, _ in generate_with_counts(lm, prompts * len(sample_seeds), settings, resume_dir, desc, show_progress, seeds=seeds)]
    return {sample_seed: texts[i * len(prompts) : (i + 1) * len(prompts)] for i, sample_seed in enumerate(sample_seeds)}


