"""Runs shared by the integration tests (session-scoped: each runs once per test session)."""

import pytest

from tests.conftest import run_pipeline

TESTBEDS = ["geo_city"]


@pytest.fixture(scope="session")
def evaluated_project(constructed_project):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(constructed_project)
        params = {"activations": {"max_new_tokens": 32}}
        run_pipeline(constructed_project, "activations", params, namespaces=[*TESTBEDS, "geo_truthfulness"])
        run_pipeline(constructed_project, "evaluation", params, namespaces=TESTBEDS)
        run_pipeline(constructed_project, "probing", namespaces=[*TESTBEDS, "geo_truthfulness"])
        small = {"interventions": {"max_new_tokens": 32, "steering": {"sweep_layers": [[8, 16]], "sweep_alphas": [2.0]}}}
        run_pipeline(constructed_project, "interventions", small, namespaces=[*TESTBEDS, "geo_truthfulness"])
    return constructed_project
