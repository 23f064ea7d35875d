"""Project pipelines, made from the testbed registry (conf/base/parameters_testbeds.yml).

Per study and stage one pipeline: ``<stage>`` for the default study (``kedro run --pipelines
probing``), ``<stage>_<study>`` for the others (``probing_paper``); ``<study>`` runs every stage of
a study, and ``__default__`` is the default study. ``testbed_<name>`` is one testbed with the
truthfulness set it pairs with, so a testbed runs alone on a clean clone.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from retraction_kedro.config import Registry, Study
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
# A testbed's own stages: sft is left out because each fine-tuned model is evaluated on every testbed of
# its study, and the report covers the whole study.
TESTBED_STAGES = ("data_construction", "activations", "evaluation", "probing", "interventions")
TESTBED_PREFIX = "testbed_"


def stage_pipeline_name(stage: str, study: Study) -> str:
    return f"{stage}{study.pipeline_suffix}"


def testbed_pipelines(registry: Registry, study: Study, stages: dict[str, Pipeline]) -> dict[str, Pipeline]:
    """``testbed_<name>`` per testbed of ``study``: its nodes and its truthfulness set's, which make the
    probes and steering directions it reads."""
    own = sum((stages[stage] for stage in TESTBED_STAGES), Pipeline([]))
    return {
        f"{TESTBED_PREFIX}{name}": own.only_nodes_with_namespaces([name, registry.testbeds[name].truthfulness])
        for name in study.testbeds
    }


def register_pipelines() -> dict[str, Pipeline]:
    registry = Registry.load()
    pipelines: dict[str, Pipeline] = {}
    for study in registry.studies:
        stages = {stage: module.create_pipeline(registry, study) for stage, module in STAGES.items()}
        pipelines |= {stage_pipeline_name(stage, study): pipe for stage, pipe in stages.items()}
        pipelines[study.name] = sum(stages.values(), Pipeline([]))
        pipelines |= testbed_pipelines(registry, study, stages)
    pipelines["__default__"] = pipelines[registry.default_study.name]
    return pipelines
