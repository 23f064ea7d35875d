"""Generating a continuation set under named intervention configurations, in dependency order.

A patch configuration writes what its ``source`` run recorded into the unsteered run, so sources
run first with recorders attached, and an attention patch limited to the top-k heads also needs
the unsteered run's attention. Record and patch runs see the same prompts in the same batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from retraction_kedro.config.interventions import InterventionConfig, InterventionParameters, SteeringSetting
from retraction_kedro.config.parameters import ModelParameters, RuntimeParameters
from retraction_kedro.lm import (
    AttentionPatch, GenerationSettings, Intervention, RowSteering, Steering, ValuePatch, continuation_prompt, generate_texts,
    load_language_model, top_changed_heads,
)  # fmt: skip

from .factory import SteeringVectors

logger = logging.getLogger(__name__)


@dataclass
class _Recorders:
    """What one run records, by the patch position that needs it."""

    values: dict[int, ValuePatch] = field(default_factory=dict)
    attention: dict[int, AttentionPatch] = field(default_factory=dict)


class ContinuationRuns:
    """The rows of one continuation set, continued under configurations of one model."""

    def __init__(self, rows: list[dict[str, Any]], model: ModelParameters, max_new_tokens: int, runtime: RuntimeParameters):
        if not rows:
            raise ValueError("The continuation set is empty; run data_construction first")
        self.rows, self.runtime = rows, runtime
        self.lm = load_language_model(model.spec)
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, stop_at_newline=True, batch_size=model.batch_size)
        self._prompts: dict[str, list[str]] = {}

    @property
    def num_layers(self) -> int:
        return self.lm.num_layers

    def prompts(self, suffix: str) -> list[str]:
        if suffix not in self._prompts:
            self._prompts[suffix] = [continuation_prompt(self.lm.tokenizer, row["messages"], suffix=suffix) for row in self.rows]
        return self._prompts[suffix]

    def run(self, name: str, suffix: str, interventions: list[Intervention], **columns: Any) -> list[dict[str, Any]]:
        responses = generate_texts(
            self.lm, self.prompts(suffix), self.settings, self.runtime.resume_dir, name, self.runtime.show_progress, interventions=interventions
        )  # fmt: skip
        return [{**row, "suffix": suffix, "response": text, "configuration": name, **columns} for row, text in zip(self.rows, responses)]

    def run_steered(self, runs: list[tuple[str, Steering, dict[str, Any]]], desc: str, suffix: str = "") -> dict[str, list[dict[str, Any]]]:
        """Several steered runs (name, steering, extra columns) of the rows as one generation call: their
        rows share batches, each steered by its own run's vector. The rows of each run, by name."""
        per_row = [steering for _, steering, _ in runs for _ in self.rows]
        responses = generate_texts(self.lm, self.prompts(suffix) * len(runs), self.settings, self.runtime.resume_dir, desc,
                                   self.runtime.show_progress, interventions=[RowSteering(per_row)])  # fmt: skip
        size = len(self.rows)
        return {
            name: [{**row, "suffix": suffix, "response": text, "configuration": name, **columns}
                   for row, text in zip(self.rows, responses[number * size : (number + 1) * size])]
            for number, (name, _, columns) in enumerate(runs)
        }  # fmt: skip


def steering_for(config: InterventionConfig, choice: SteeringSetting | None) -> SteeringSetting:
    """The configuration's own steering, or the sweep's choice with the configuration's sign."""
    if not config.from_sweep:
        return config.steering
    if choice is None:
        raise ValueError(f"{config.name}: from_sweep needs the sweep's choice (steering_choice)")
    return choice.model_copy(update={"alpha": abs(choice.alpha) * (config.sign or 1)})


def _steered_together(runs: ContinuationRuns, order, recorders: dict[str, _Recorders], vectors: SteeringVectors,
                      choice: SteeringSetting | None) -> dict[str, list[dict[str, Any]]]:
    """The steer runs that record nothing, one generation call per suffix (their rows share batches), by name."""
    groups: dict[str, list[InterventionConfig]] = {}
    for config in order:
        if config.kind == "steer" and not (recorders[config.name].values or recorders[config.name].attention):
            if not (config.from_sweep and choice is None):
                groups.setdefault(config.suffix, []).append(config)
    results: dict[str, list[dict[str, Any]]] = {}
    for suffix, group in groups.items():
        if len(group) == 1 or len({(c.position, c.every_token) for c in group}) > 1:  # one call each
            continue
        steered = [(c.name, *vectors.steering(steering_for(c, choice), runs.num_layers, c.position, c.every_token)) for c in group]
        results |= runs.run_steered([(name, steering, {"relative_size": size}) for name, steering, size in steered],
                                    " + ".join(c.name for c in group), suffix)  # fmt: skip
    return results


def run_configurations(
    runs: ContinuationRuns,
    settings: InterventionParameters,
    vectors: SteeringVectors,
    choice: SteeringSetting | None = None,
    reusable_baseline: list[str] | None = None,
) -> pl.DataFrame:
    """Every configuration of ``settings`` on ``runs``; the unsteered run without a suffix takes
    ``reusable_baseline`` (evaluation's responses) when given and nothing needs to be recorded in it.
    ``from_sweep`` runs are left out when the sweep chose nothing (``choice`` None)."""
    configs = settings.configurations
    unrunnable = {c.name for c in configs if c.from_sweep and choice is None}
    if any(c.source in unrunnable for c in configs):
        raise ValueError("a patch's source run is from_sweep, and the sweep chose no setting: give the source its own steering")
    layers = list(range(runs.num_layers))
    recorders: dict[str, _Recorders] = {c.name: _Recorders() for c in configs}
    for patch in (c for c in configs if c.source is not None):
        needs = recorders[patch.source]
        if patch.kind == "value_patch":
            needs.values.setdefault(patch.position, ValuePatch(layers, "record", position=patch.position))
        else:
            needs.attention.setdefault(patch.position, AttentionPatch(layers, "record", position=patch.position))
            if patch.top_k_heads:
                baseline = recorders[settings.baseline(patch.suffix).name]
                baseline.attention.setdefault(patch.position, AttentionPatch(layers, "record", position=patch.position))
    order = sorted(configs, key=lambda c: ("none", "steer", "ablate", "value_patch", "attention_patch").index(c.kind))
    tables: list[dict[str, Any]] = []
    together = _steered_together(runs, order, recorders, vectors, choice)
    for config in order:
        if config.from_sweep and choice is None:
            logger.warning("%s: not run: no sweep setting met the choice rule (steering_choice.setting is null)", config.name)
            continue
        if config.name in together:
            tables += together[config.name]
            continue
        recording = [*recorders[config.name].values.values(), *recorders[config.name].attention.values()]
        columns: dict[str, Any] = {"relative_size": 0.0}
        if config.kind == "none":
            interventions: list[Intervention] = []
            if reusable_baseline is not None and not config.suffix and not recording:
                logger.info("%s: the unsteered continuations of evaluation are reused (same generation settings)", config.name)
                tables += [{**row, "suffix": "", "response": text, "configuration": config.name, **columns} for row, text in zip(runs.rows, reusable_baseline)]
                continue
        elif config.kind in ("steer", "ablate"):
            steering, size = vectors.steering(
                steering_for(config, choice), runs.num_layers, config.position, config.every_token, ablate=config.kind == "ablate"
            )
            interventions, columns = [steering], {"relative_size": size}
        elif config.kind == "value_patch":
            recorded = recorders[config.source].values[config.position].values
            interventions = [ValuePatch(layers, "patch", recorded, position=config.position)]
        else:
            steered = recorders[config.source].attention[config.position].weights
            heads = None
            if config.top_k_heads:
                unsteered = recorders[settings.baseline(config.suffix).name].attention[config.position].weights
                heads = top_changed_heads(unsteered, steered, config.top_k_heads)
            interventions = [AttentionPatch(layers, "patch", steered, position=config.position, heads=heads)]
        tables += runs.run(config.name, config.suffix, [*interventions, *recording], **columns)
    return pl.DataFrame(tables, infer_schema_length=None)
