"""Project pipelines, made from the testbed registry (conf/base/parameters_testbeds.yml).

Per study and stage one pipeline: ``<stage>`` for the default study (``kedro run --pipelines
probing``), ``<stage>_<study>`` for the others (``probing_paper``); ``<study>`` runs every stage of
a study, and ``__default__`` is the default study.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from retraction_kedro.config import Registry
from retraction_kedro.pipelines import activations, data_construction, evaluation, interventions, probing, reporting, sft

STAGES = {
    "data_construction": data_construction,
    "activations": activations,
    "evaluation": evaluation,
    "probing": probing,
    "interventions": interventions,
    "sft": sft,
    "report": reporting,
}


def register_pipelines() -> dict[str, Pipeline]:
    registry = Registry.load()
    pipelines: dict[str, Pipeline] = {}
    for study in registry.studies:
        stages = {stage: module.create_pipeline(registry, study) for stage, module in STAGES.items()}
        pipelines |= {f"{stage}{study.pipeline_suffix}": pipe for stage, pipe in stages.items()}
        pipelines[study.name] = sum(stages.values(), Pipeline([]))
    pipelines["__default__"] = pipelines[registry.default_study.name]
    return pipelines
