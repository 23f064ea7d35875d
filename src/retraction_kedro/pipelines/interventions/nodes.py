"""Belief steering and patching: directions, runs under each configuration, summaries.

Running, judging (the evaluation pipeline's judge node), summarizing and plotting are separate
nodes; the configurations are data (``parameters_interventions.yml``).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import polars as pl
import torch

from retraction_kedro.config.interventions import InterventionParameters, SteeringSetting
from retraction_kedro.config.parameters import ActivationParameters, EvidenceParameters, ModelParameters, RuntimeParameters
from retraction_kedro.pipelines.evaluation.nodes import compare_runs, judged_metrics, mlflow_metrics
from retraction_kedro.pipelines.evaluation.well_formed import well_formed

from .factory import SteeringVectors
from .runs import ContinuationRuns, run_configurations

logger = logging.getLogger(__name__)

SWEEP_BASELINE = "sweep_none"


def steering_directions(hidden_train: dict[str, torch.Tensor], index_train: pl.DataFrame) -> dict[str, torch.Tensor]:
    """Per layer: mean hidden state of correct minus wrong truthfulness answers (training split), and
    the mean residual-stream norm there (the unit of the relative steering scale)."""
    hidden = hidden_train["hidden"].float()
    if hidden.shape[0] != index_train.height:
        raise ValueError(f"truthfulness hidden states {tuple(hidden.shape)} do not match the index's {index_train.height} rows")
    labels = torch.tensor(index_train["label"].to_list()).bool()
    if labels.all() or not labels.any():
        raise ValueError("steering directions need both correct and wrong truthfulness answers")
    return {
        "mean_difference": hidden[labels].mean(0) - hidden[~labels].mean(0),
        "residual_norm": hidden.norm(dim=-1).mean(0),
        "layers": hidden_train.get("layers", torch.arange(hidden.shape[1])),
    }


def _reusable(responses: pl.DataFrame | None, continuations: pl.DataFrame, settings: InterventionParameters, activations: dict[str, Any]) -> list[str] | None:
    """The unsteered responses of the activations pipeline, when they were generated as a run here would be."""
    generated = ActivationParameters.parse(activations, "activations")
    if responses is None or generated.suffix or generated.max_new_tokens != settings.max_new_tokens:
        return None
    if responses.height != continuations.height or responses["name"].to_list() != continuations["name"].to_list():
        return None
    return responses["response"].to_list()


def run_interventions(
    continuations: pl.DataFrame,
    directions: dict[str, torch.Tensor],
    probes: dict[str, torch.Tensor],
    steering_choice: dict[str, Any],
    unsteered_responses: pl.DataFrame,
    model_spec: dict[str, Any],
    interventions: dict[str, Any],
    activations: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """The test continuations under every configuration (column ``configuration``)."""
    settings = InterventionParameters.parse(interventions, "interventions")
    runs = ContinuationRuns(continuations.to_dicts(), ModelParameters.parse(model_spec, "model"), settings.max_new_tokens,
                            RuntimeParameters.parse(runtime, "runtime"))  # fmt: skip
    choice = SteeringSetting.parse(steering_choice["setting"], "steering_choice.setting") if steering_choice.get("setting") else None
    vectors = SteeringVectors.from_artifacts(directions, probes)
    return run_configurations(runs, settings, vectors, choice, _reusable(unsteered_responses, continuations, settings, activations))


def _sweep_rows(continuations: pl.DataFrame, sweep) -> tuple[list[dict[str, Any]], list[int]]:
    """The split's continuations the sweep runs on: all, or a seeded sample of ``sweep.max_examples``."""
    rows = continuations.to_dicts()
    chosen = list(range(len(rows)))
    if sweep.max_examples is not None and len(rows) > sweep.max_examples:
        chosen = sorted(random.Random(sweep.seed).sample(range(len(rows)), sweep.max_examples))
    return [rows[i] for i in chosen], chosen


def _climb(runs: ContinuationRuns, vectors: SteeringVectors, ladders: list[list[SteeringSetting]], alphas: list[float], bound: float) -> list[dict[str, Any]]:
    """Up every ladder one alpha at a time, each round's rungs in one generation call; a ladder stops after the
    rung whose well-formed share falls below ``bound``."""
    table: list[dict[str, Any]] = []
    climbing = list(ladders)
    for rung, alpha in enumerate(alphas):
        if not climbing:
            break
        steered = [(s.name, *vectors.steering(s, runs.num_layers)) for s in (ladder[rung] for ladder in climbing)]
        results = runs.run_steered([(name, steering, {"relative_size": size}) for name, steering, size in steered], f"sweep |alpha| {alpha:g}")
        for ladder in list(climbing):
            part = results[ladder[rung].name]
            table += part
            if _well_formed_share(part) < bound and rung + 1 < len(alphas):
                logger.info("Sweep: %s keeps %.2f well-formed, under the bound %.2f: the alphas above it are not run",
                            ladder[rung].name, _well_formed_share(part), bound)  # fmt: skip
                climbing.remove(ladder)
    return table


def run_steering_sweep(
    continuation_train: pl.DataFrame,
    continuation_test: pl.DataFrame,
    unsteered_train: pl.DataFrame,
    unsteered_test: pl.DataFrame,
    directions: dict[str, torch.Tensor],
    probes: dict[str, torch.Tensor],
    model_spec: dict[str, Any],
    interventions: dict[str, Any],
    activations: dict[str, Any],
    runtime: dict[str, Any],
) -> pl.DataFrame:
    """The sweep's continuations (``sweep.split``, at most ``sweep.max_examples`` of them), unsteered
    (``sweep_none``) and up the first group's ladders (the first direction's first band, both signs; every
    ladder without ``sweep.settled_p``) one alpha at a time: every ladder's next setting runs in one generation
    call, and a ladder stops after the setting whose well-formed share falls below the choice rule's bound
    (``SweepParameters``). ``run_steering_sweep_rest`` runs the other ladders where this leaves the question open."""
    settings = InterventionParameters.parse(interventions, "interventions")
    sweep = settings.sweep
    continuations, unsteered_responses = (continuation_train, unsteered_train) if sweep.split == "train" else (continuation_test, unsteered_test)
    rows, chosen = _sweep_rows(continuations, sweep)
    runs = ContinuationRuns(rows, ModelParameters.parse(model_spec, "model"), settings.max_new_tokens, RuntimeParameters.parse(runtime, "runtime"))
    vectors = SteeringVectors.from_artifacts(directions, probes)
    reusable = _reusable(unsteered_responses, continuations, settings, activations)
    if reusable is not None:  # greedy continuations do not depend on the other rows of a batch: a sample's are the split's
        table = [{**row, "suffix": "", "response": reusable[i], "configuration": SWEEP_BASELINE, "relative_size": 0.0} for row, i in zip(rows, chosen)]
    else:
        table = runs.run(SWEEP_BASELINE, "", [], relative_size=0.0)
    bound = sweep.min_well_formed * _well_formed_share(table)
    table += _climb(runs, vectors, sweep.first_ladders(), sweep.alphas, bound)
    return pl.DataFrame(table, infer_schema_length=None)


def run_steering_sweep_rest(
    judged_first: pl.DataFrame,
    continuation_train: pl.DataFrame,
    continuation_test: pl.DataFrame,
    directions: dict[str, torch.Tensor],
    probes: dict[str, torch.Tensor],
    model_spec: dict[str, Any],
    interventions: dict[str, Any],
    runtime: dict[str, Any],
    evidence: dict[str, Any],
) -> pl.DataFrame:
    """The sweep's other ladders (every band and direction after the first), only where the first group's
    judged continuations leave the question open (``SweepParameters.settled_p``); empty where they settle it."""
    settings = InterventionParameters.parse(interventions, "interventions")
    sweep = settings.sweep
    ladders = sweep.rest_ladders()
    if not ladders:
        return pl.DataFrame()
    settled = _first_group_settles(judged_first, settings, EvidenceParameters.parse(evidence, "evidence"))
    if settled is not None:
        logger.info("Sweep: %s raises retraction recall (McNemar p %.3g < %g): the question is settled, the other %d settings are not run",
                    settled["configuration"], settled["change"]["retraction_recall"]["p_value"], sweep.settled_p, sum(map(len, ladders)))  # fmt: skip
        return pl.DataFrame()
    rows, _ = _sweep_rows(continuation_train if sweep.split == "train" else continuation_test, sweep)
    baseline = _configuration(judged_first, SWEEP_BASELINE)
    if baseline["name"].to_list() != [row["name"] for row in rows]:
        raise ValueError("the sweep's first part ran on other continuations than its split gives now: rerun run_steering_sweep")
    logger.info("Sweep: the first band and direction leave the question open: the other %d settings run", sum(map(len, ladders)))
    runs = ContinuationRuns(rows, ModelParameters.parse(model_spec, "model"), settings.max_new_tokens, RuntimeParameters.parse(runtime, "runtime"))
    bound = sweep.min_well_formed * _well_formed_share(baseline.to_dicts())
    return pl.DataFrame(_climb(runs, SteeringVectors.from_artifacts(directions, probes), ladders, sweep.alphas, bound), infer_schema_length=None)


def _well_formed_share(rows: list[dict[str, Any]]) -> float:
    """The share of continuations the judge can read (as the evaluation's judge node measures it)."""
    return sum(well_formed(row["response"]) for row in rows) / len(rows) if rows else 0.0


def _configuration(judged: pl.DataFrame, name: str, reference: pl.DataFrame | None = None) -> pl.DataFrame:
    part = judged.filter(pl.col("configuration") == name)
    if reference is not None and part["name"].to_list() != reference["name"].to_list():
        raise ValueError(f"run {name!r} does not hold the same examples in the same order as its baseline")
    return part


def summarize_interventions(judged: pl.DataFrame, interventions: dict[str, Any], evidence: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Retraction under each configuration with intervals, each compared with the unsteered run of its
    suffix on the same examples (paired bootstrap interval, exact McNemar p); as JSON and as MLflow
    metrics ``<name>.<metric>`` and ``<name>.change.<metric>``. ``from_sweep`` runs the sweep gave no
    setting to are left out."""
    settings = InterventionParameters.parse(interventions, "interventions")
    options = EvidenceParameters.parse(evidence, "evidence")
    report: dict[str, Any] = {}
    run = set(judged["configuration"].to_list())
    for config in settings.configurations:
        if config.name not in run and config.from_sweep:
            logger.warning("%s: not run (the sweep chose no setting): left out of the summary", config.name)
            continue
        baseline = _configuration(judged, settings.baseline(config.suffix).name)
        part = _configuration(judged, config.name, baseline)
        report[config.name] = {"kind": config.kind, "suffix": config.suffix, "baseline": settings.baseline(config.suffix).name,
                               "relative_size": float(part["relative_size"][0]), **compare_runs(part, baseline, options)}  # fmt: skip
        change = report[config.name]["change"]["retraction_recall"]
        logger.info("%s: recall %s (change %s, p %s)", config.name, report[config.name]["retraction_recall"]["value"], change["value"], change["p_value"])
    numeric = {name: {k: v for k, v in values.items() if k not in ("kind", "suffix", "baseline")} for name, values in report.items()}
    return report, mlflow_metrics(numeric)


def _sweep_table(judged: pl.DataFrame, settings: InterventionParameters, options: EvidenceParameters) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """Per setting that ran (the unsteered run first): its retraction against unsteered; the row the choice rule
    picks (or None); the settings of the grid that did not run."""
    baseline = _configuration(judged, SWEEP_BASELINE)
    unsteered = {"configuration": SWEEP_BASELINE, "band": "none", "alpha": 0.0, "direction": "none", "scale": settings.sweep.scale,
                 "relative_size": 0.0, **judged_metrics(baseline)}  # fmt: skip
    rows, candidates, not_run = [unsteered], [], []
    floor = settings.sweep.min_well_formed * (unsteered["well_formed"]["value"] or 0.0)
    ran = set(judged["configuration"].to_list())
    order = {setting.name: position for position, setting in enumerate(settings.sweep.settings())}
    for ladder in settings.sweep.ladders():
        kept = True  # every smaller alpha of this ladder kept the bound
        for setting in ladder:
            if setting.name not in ran:
                not_run.append(setting.name)
                continue
            part = _configuration(judged, setting.name, baseline)
            row = {"configuration": setting.name, "band": setting.layers.label(), "alpha": setting.alpha, "direction": setting.direction,
                   "scale": setting.scale, "relative_size": float(part["relative_size"][0]), **compare_runs(part, baseline, options)}  # fmt: skip
            rows.append(row)
            kept = kept and row["well_formed"]["value"] >= floor
            recall = row["retraction_recall"]["value"]
            if setting.alpha < 0 and recall is not None and kept:
                candidates.append((-recall, abs(setting.alpha), order[setting.name], row, setting))
    chosen = min(candidates, key=lambda c: c[:3]) if candidates else None
    rows = [rows[0], *sorted(rows[1:], key=lambda row: order[row["configuration"]])]
    return rows, ({**chosen[3], "setting": chosen[4]} if chosen else None), not_run


def _first_group_settles(judged_first: pl.DataFrame, settings: InterventionParameters, options: EvidenceParameters) -> dict[str, Any] | None:
    """The first group's choice where it raises retraction recall over unsteered with McNemar p < ``settled_p``, else None."""
    first = {setting.name for ladder in settings.sweep.first_ladders() for setting in ladder}
    _, chosen, _ = _sweep_table(judged_first.filter(pl.col("configuration").is_in([SWEEP_BASELINE, *first])), settings, options)
    if chosen is None:
        return None
    change = chosen["change"]["retraction_recall"]
    settled = change["value"] is not None and change["value"] > 0 and change["p_value"] is not None and change["p_value"] < settings.sweep.settled_p
    return chosen if settled else None


def summarize_steering_sweep(
    judged_first: pl.DataFrame, judged_rest: pl.DataFrame, interventions: dict[str, Any], evidence: dict[str, Any]
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per sweep setting that ran (the unsteered run first), and the setting chosen by the rule written
    in ``parameters_interventions.yml``: among negative settings whose well-formed share, and that of every
    smaller alpha of their ladder, is at least ``sweep.min_well_formed`` times the unsteered run's, the highest
    retraction recall; ties go to the smaller |alpha|, then the earlier band and direction. No eligible
    setting: no choice (null). Settings a ladder stopped before are listed as not run; those the first group
    made unnecessary (``sweep.settled_p``) as not searched."""
    settings = InterventionParameters.parse(interventions, "interventions")
    options = EvidenceParameters.parse(evidence, "evidence")
    judged = pl.concat([judged_first, judged_rest], how="diagonal_relaxed") if judged_rest.height else judged_first
    rows, chosen, missing = _sweep_table(judged, settings, options)
    rest = {setting.name for ladder in settings.sweep.rest_ladders() for setting in ladder}
    searched = judged_rest.height > 0 or not rest
    choice = {
        "setting": chosen["setting"].model_dump() if chosen else None,
        "rule": f"max retraction recall among negative settings whose well-formed share, and that of every smaller alpha of "
                f"their ladder, is >= {settings.sweep.min_well_formed} x unsteered; ties: smaller |alpha|, earlier band, earlier direction"
                + ("" if settings.sweep.settled_p is None else f"; the other bands and directions only where the first band of the first "
                   f"direction's choice does not raise recall with McNemar p < {settings.sweep.settled_p}"),
        "split": settings.sweep.split,
        "examples": _configuration(judged, SWEEP_BASELINE).height,
        "not_run": [name for name in missing if searched or name not in rest],
        "not_searched": [] if searched else [name for name in missing if name in rest],
    }  # fmt: skip
    logger.info("Steering sweep choice: %s (%d settings run, %d above a broken rung not run, %d not searched)",
                choice["setting"], len(rows) - 1, len(choice["not_run"]), len(choice["not_searched"]))  # fmt: skip
    return pl.DataFrame(rows), choice
