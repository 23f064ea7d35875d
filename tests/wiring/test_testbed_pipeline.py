"""One testbed runs alone on a clean project: ``testbed_<name>`` builds the truthfulness set it pairs with,
and ``--namespaces <name>`` reuses that set once it is there (and names the command that makes it before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retraction_kedro.upstream import MissingUpstreamError
from tests.conftest import run_pipeline


def made(project: Path, namespace: str) -> set[str]:
    return {path.name for path in (project / "data").rglob("*") if path.is_file() and namespace in path.parts}


def test_a_testbed_pipeline_builds_its_truthfulness_set_and_a_namespace_run_reuses_it(fixture_project):
    project, params = fixture_project
    message = r"run `kedro run --namespaces fixture_truthfulness` first with this run's --params, or `kedro run --pipelines testbed_atlantis_city` to build both"
    with pytest.raises(MissingUpstreamError, match=message):
        run_pipeline(project, "__default__", params, namespaces=["atlantis_city"])

    run_pipeline(project, "testbed_atlantis_city", params)
    assert {"belief_probes.safetensors", "steering_directions.safetensors"} <= made(project, "fixture_truthfulness")
    assert {"interventions.json", "probe_summary.json"} <= made(project, "atlantis_city")  # the stages that read them

    run_pipeline(project, "__default__", params, namespaces=["atlantis_city"], node_names=["atlantis_city.evaluate_probes_on_testbed"])
