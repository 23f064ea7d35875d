"""Project pipelines.

``__default__`` runs the whole study on the embedded world, offline. Pipelines
ending in ``_paper`` run the same templates on the paper's data (data/01_raw/paper).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from retraction_kedro.pipelines import activations, data_construction, evaluation, interventions, probing, reporting, sft


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {
        "data_construction": data_construction.create_pipeline(),
        "data_construction_paper": data_construction.create_paper_pipeline(),
        "activations": activations.create_pipeline(),
        "activations_paper": activations.create_paper_pipeline(),
        "evaluation": evaluation.create_pipeline(),
        "evaluation_paper": evaluation.create_paper_pipeline(),
        "probing": probing.create_pipeline(),
        "probing_paper": probing.create_paper_pipeline(),
        "interventions": interventions.create_pipeline(),
        "interventions_paper": interventions.create_paper_pipeline(),
        "sft": sft.create_pipeline(),
        "sft_paper": sft.create_paper_pipeline(),
        "report": reporting.create_pipeline(),
        "report_paper": reporting.create_paper_pipeline(),
    }
    default = ("data_construction", "activations", "evaluation", "probing", "interventions", "sft", "report")
    pipelines["__default__"] = sum((pipelines[name] for name in default), Pipeline([]))
    # The same study on the paper's files: `kedro run --pipelines paper --params model.name=...`
    pipelines["paper"] = sum((pipelines[f"{name}_paper"] for name in default), Pipeline([]))
    return pipelines
