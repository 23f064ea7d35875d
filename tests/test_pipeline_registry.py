"""``testbed_<name>``: a testbed's stages with the truthfulness set it pairs with, so it runs on a clean clone."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline

from retraction_kedro.config import Registry
from retraction_kedro.pipeline_registry import TESTBED_STAGES, register_pipelines
from retraction_kedro.upstream import producers
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def registered():
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)  # the registry is read from the project found from the working directory
        return Registry.load(), register_pipelines()


def test_every_testbed_has_a_pipeline_that_makes_everything_it_reads(registered):
    registry, pipelines = registered
    made_by = producers(pipelines)
    for name, entry in registry.testbeds.items():
        pipeline = pipelines[f"testbed_{name}"]
        made_elsewhere = sorted(dataset for dataset in pipeline.inputs() if dataset in made_by)
        assert made_elsewhere == [], f"testbed_{name} reads what only another pipeline makes: {made_elsewhere}"
        namespaces = {node.namespace for node in pipeline.nodes}
        assert namespaces == {name, entry.truthfulness}, f"testbed_{name}: {namespaces}"


def test_a_testbed_pipeline_holds_its_own_and_its_truthfulness_sets_nodes_of_every_stage_but_sft_and_report(registered):
    registry, pipelines = registered
    for name, entry in registry.testbeds.items():
        study = registry.study(entry.study)
        stages = sum((pipelines[f"{stage}{study.pipeline_suffix}"] for stage in TESTBED_STAGES), Pipeline([]))
        expected = {node.name for node in stages.nodes if node.namespace in (name, entry.truthfulness)}
        assert {node.name for node in pipelines[f"testbed_{name}"].nodes} == expected
        assert {f"{name}.run_interventions", f"{entry.truthfulness}.train_belief_probes"} <= expected
