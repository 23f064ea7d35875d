"""Checks that run before a pipeline does: settings that cannot work, and artifacts no run has made yet,
fail before any model loads."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from retraction_kedro.config import Registry
from retraction_kedro.config.interventions import InterventionParameters
from retraction_kedro.config.parameters import (
    ActivationParameters,
    ConstructionParameters,
    EvaluationParameters,
    EvidenceParameters,
    ModelParameters,
    PaperDataParameters,
    Parameters,
    ParameterError,
    ProbingParameters,
    QuestionSource,
    RuntimeParameters,
    SftParameters,
    StudyParameters,
    TestbedParameters,
    TruthfulnessParameters,
    WorldParameters,
)
from retraction_kedro.upstream import check_upstream

logger = logging.getLogger(__name__)


class PreflightError(ValueError):
    """A pipeline that breaks the project's wiring rules (a dataset without a catalog entry)."""

GROUPS: dict[str, type[Parameters]] = {
    "model": ModelParameters,
    "runtime": RuntimeParameters,
    "world": WorldParameters,
    "paper_data": PaperDataParameters,
    "construction": ConstructionParameters,
    "activations": ActivationParameters,
    "evaluation": EvaluationParameters,
    "probing": ProbingParameters,
    "interventions": InterventionParameters,
    "sft": SftParameters,
    "evidence": EvidenceParameters,
}
ENTRIES: dict[str, type[Parameters]] = {"testbeds": TestbedParameters, "truthfulness_sets": TruthfulnessParameters, "studies": StudyParameters}


def parameter_model(key: str) -> type[Parameters] | None:
    """The typed group behind a node's ``params:<key>`` input (None: an untyped value)."""
    parts = key.split(".")
    if key in GROUPS:
        return GROUPS[key]
    if parts[0] in ENTRIES and len(parts) == 2:
        return ENTRIES[parts[0]]
    if parts[0] in ENTRIES and parts[-1] == "source" and len(parts) == 3:
        return QuestionSource
    return None


def check_parameters(parameters: dict[str, Any]) -> dict[str, Parameters]:
    """Every typed group among ``parameters`` (``{key: value}`` of the nodes' params inputs), parsed."""
    parsed = {}
    for key, value in sorted(parameters.items()):
        model = parameter_model(key)
        if model is not None:
            parsed[key] = model.parse(value, key)
    return parsed


def check_against_model(parsed: dict[str, Parameters]) -> None:
    """Layer bands inside the model, captured layers that exist, one-token suffixes."""
    from retraction_kedro.lm import model_shape

    model = parsed.get("model")
    if model is None or not ({"interventions", "activations"} & set(parsed)):
        return
    shape = model_shape(model.spec)
    activations = parsed.get("activations")
    captured = None
    if activations is not None and activations.layers is not None:
        bad = [layer for layer in activations.layers if not 0 <= layer < shape.num_layers]
        if bad:
            raise ParameterError(f"Parameter activations.layers: {bad} lie outside the model's {shape.num_layers} layers (got {activations.layers!r})")
        captured = set(activations.layers)
    interventions = parsed.get("interventions")
    if interventions is None:
        return
    bands = [(f"configurations[{i}].steering.layers", c.steering.layers, c.steering.direction_layer)
             for i, c in enumerate(interventions.configurations) if c.steering]  # fmt: skip
    bands += [(f"sweep.bands[{i}]", band, interventions.sweep.direction_layer) for i, band in enumerate(interventions.sweep.bands)]
    for where, layers, direction_layer in bands:
        try:
            band = layers.resolve(shape.num_layers)
        except ValueError as error:
            raise ParameterError(f"Parameter interventions.{where}: {error} (got {layers.model_dump(exclude_none=True)})") from None
        needed = set(band) | ({direction_layer} if direction_layer is not None else set())
        if direction_layer is not None and direction_layer >= shape.num_layers:
            raise ParameterError(f"Parameter interventions.{where}: direction_layer {direction_layer} outside the model's {shape.num_layers} layers")
        if captured is not None and not needed <= captured:
            raise ParameterError(f"Parameter interventions.{where}: layers {sorted(needed - captured)} are not in activations.layers {sorted(captured)}")
    for config in interventions.configurations:
        if config.suffix and len(shape.tokenizer(config.suffix, add_special_tokens=False)["input_ids"]) != 1:
            raise ParameterError(
                f"Parameter interventions.configurations {config.name}.suffix: {config.suffix!r} is not one token of this model's "
                "tokenizer (positions -1/-2 count from it)"
            )


def check_persisted(pipeline: Any, catalog: Any) -> None:
    """Every dataset a node reads or writes has a catalog entry, so any stage can rerun alone."""
    unpersisted = sorted(
        name for name in pipeline.datasets() if not name.startswith("params:") and name != "parameters" and name not in catalog
    )
    if unpersisted:
        raise PreflightError(
            f"Dataset {unpersisted[0]!r} has no catalog entry (and {len(unpersisted) - 1} more): every dataset a node reads or "
            "writes is persisted, so any stage can rerun alone; add an entry or register its namespace"
        )


def check_inputs_made(run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
    """Artifacts the run reads that another pipeline makes are there (upstream.py says which command makes them)."""
    from kedro.framework.project import pipelines  # loaded by now: the session built the run's pipeline from them

    from retraction_kedro.pipeline_registry import STAGES, TESTBED_PREFIX, stage_pipeline_name

    registry = Registry(catalog.load("parameters"))
    stages = [stage_pipeline_name(stage, study) for study in registry.studies for stage in STAGES]
    check_upstream(pipeline, catalog, dict(pipelines), stages, run_params, TESTBED_PREFIX)


class PreflightHooks:
    # tryfirst: before kedro-mlflow opens a run that a failed check would leave behind
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        keys = {name.removeprefix("params:") for name in pipeline.inputs() if name.startswith("params:")}
        parsed = check_parameters({key: catalog.load(f"params:{key}") for key in keys})
        check_against_model(parsed)
        check_persisted(pipeline, catalog)
        check_inputs_made(run_params, pipeline, catalog)
        logger.info("Preflight: %d parameter groups valid", len(parsed))
