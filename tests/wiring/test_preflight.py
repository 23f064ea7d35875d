"""Settings that cannot work fail before any model loads, in one line naming the parameter; a namespace
the registry does not know has no catalog entry."""

from __future__ import annotations

import pytest
from kedro.io import DatasetNotFoundError

from retraction_kedro.config import ParameterError
from retraction_kedro.lm import loading
from tests.conftest import run_pipeline


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(spec):
        raise AssertionError(f"a model was loaded: {spec}")

    monkeypatch.setattr(loading, "_load_uncached", refuse)


CASES = [
    ({"interventions": {"configurations": [{"name": "steer_none", "kind": "none"},
                                           {"name": "deep", "kind": "steer", "steering": {"layers": {"first": 2, "last": 9}, "alpha": 1.0}}]}},
     r"^Parameter interventions.configurations\[1\].steering.layers: layers 2-9 lie outside the model's 4 layers \(0-3\) "
     r"\(got \{'first': 2, 'last': 9\}\)$"),
    ({"interventions": {"configurations": [{"name": "steer_none", "kind": "none"}, {"name": "patch_none", "kind": "none", "suffix": " is it"}]}},
     r"^Parameter interventions.configurations patch_none.suffix: ' is it' is not one token of this model's tokenizer"),
    ({"activations": {"layers": [0, 7]}}, r"^Parameter activations.layers: \[7\] lie outside the model's 4 layers"),
    ({"probing": {"trainer": "batchd"}}, r"^Parameter probing.trainer: Input should be 'batched' or 'sklearn' \(got 'batchd'\)$"),
    ({"construction": {"temperature": "warm"}}, r"^Parameter construction.temperature: Input should be a valid number"),
    ({"sft": {"learning_rate": 0.1}}, r"^Parameter sft.learning_rate: unknown key \(got 0.1\)$"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "message"), CASES)
def test_impossible_settings_fail_before_any_model_loads(fixture_project, no_model_loads, params, message):
    project, base = fixture_project
    with pytest.raises(ParameterError, match=message) as error:
        run_pipeline(project, "__default__", {**base, **params})
    assert "\n" not in str(error.value)


def test_a_namespace_the_registry_does_not_know_has_no_catalog_entry(fixture_project):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project, params = fixture_project
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        catalog = session.load_context().catalog
        assert "atlantis_city.continuation_test" in catalog
        for name in ("geo_city.continuation_test", "atlantis_town.continuation_test", "finetuned_geo_city.model_spec"):
            assert name not in catalog
            with pytest.raises(DatasetNotFoundError):
                catalog.load(name)
