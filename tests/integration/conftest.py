"""Runs shared by the integration tests (session-scoped: each runs once per test session)."""

import pytest

from tests.conftest import run_pipeline

TESTBEDS = ["geo_city"]
# one band and one relative alpha: the sweep's shape, at a fraction of its time
SMALL_INTERVENTIONS = {"interventions": {"max_new_tokens": 32, "sweep": {
    "max_examples": 16, "bands": [{"from_fraction": 0.28, "to_fraction": 0.55}], "alphas": [0.1], "directions": ["mean_difference"]}}}


@pytest.fixture(scope="session")
def evaluated_project(constructed_project):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(constructed_project)
        params = {"activations": {"max_new_tokens": 32, "sampling": {"seeds": [0]}}}  # one sampled run: the path, at a third of its time
        run_pipeline(constructed_project, "activations", params, namespaces=[*TESTBEDS, "geo_truthfulness"])
        run_pipeline(constructed_project, "evaluation", params, namespaces=TESTBEDS)
        run_pipeline(constructed_project, "probing", namespaces=[*TESTBEDS, "geo_truthfulness"])
        run_pipeline(constructed_project, "interventions", SMALL_INTERVENTIONS, namespaces=[*TESTBEDS, "geo_truthfulness"])
    return constructed_project
