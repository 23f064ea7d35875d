"""One job per namespace, without Airflow: the grouping kedro-airflow's `--group-by namespace` uses, checked on
the default pipeline, and the DAG file the project's template makes from it."""

from __future__ import annotations

import graphlib

import pytest

from retraction_kedro.config import Registry
from tests.conftest import PROJECT_ROOT
from tests.orchestration.conftest import MODELS, create_dag, dataset_dependencies, kedro_run_options, task_commands


@pytest.fixture(scope="module")
def groups(default_pipeline):
    return {group.name: group for group in default_pipeline.group_nodes_by("namespace")}


def test_one_job_per_registry_namespace(groups):
    study = Registry.load(PROJECT_ROOT).default_study
    expected = {*study.testbeds, *study.truthfulness_sets, *study.finetuned_models, study.namespace}
    assert set(groups) == expected
    assert {group.type for group in groups.values()} == {
        "namespace"
    }  # no node outside a namespace becomes a task of its own


def test_a_jobs_namespace_selects_exactly_its_nodes(default_pipeline, groups):
    """`kedro run --namespaces finetuned_geo_city` must run the nested finetuned_geo_city.geo_city nodes too, and
    `--namespaces geo_city` must not reach into finetuned_geo_city.geo_city."""
    for name, group in groups.items():
        selected = {node.name for node in default_pipeline.only_nodes_with_namespaces([name]).nodes}
        assert selected == set(group.nodes), name
    assert sum(len(group.nodes) for group in groups.values()) == len(default_pipeline.nodes)


def test_job_order_follows_the_datasets_and_testbeds_run_side_by_side(default_pipeline, groups):
    dependencies = dataset_dependencies(default_pipeline)
    assert {name: set(group.dependencies) for name, group in groups.items()} == dependencies
    order = list(graphlib.TopologicalSorter(dependencies).static_order())  # CycleError: Airflow would refuse the DAG
    study = Registry.load(PROJECT_ROOT).default_study
    for testbed in study.testbeds:
        assert not dependencies[testbed] & set(study.testbeds), f"{testbed} waits for another testbed"
    assert order[-1] == study.namespace


@pytest.fixture(scope="module")
def dag_source(kedro_project, tmp_path_factory):
    pytest.importorskip("kedro_airflow", reason="kedro-airflow writes the DAG files (make install brings it)")
    target = tmp_path_factory.mktemp("dags")
    code, output = create_dag(
        kedro_project,
        target,
        f"model_name={MODELS[0]},project_path=/srv/retraction_kedro,kedro_command=/srv/venv/bin/kedro",
    )
    assert code == 0, output
    (path,) = target.glob("*.py")
    return path.read_text()


def test_generated_dag_runs_one_kedro_command_per_namespace(dag_source, groups):
    compile(dag_source, "dag.py", "exec")
    commands = task_commands(dag_source)
    assert set(commands) == set(groups)
    for namespace, argv in commands.items():
        assert argv[0] == "/srv/venv/bin/kedro"
        options = kedro_run_options(argv)
        assert options["pipelines"] == ["__default__"]
        assert options["namespaces"] == [namespace]
        assert options["params"] == {"model": {"name": MODELS[0]}}
        assert options["env"] == "local"
    assert 'PROJECT_PATH = "/srv/retraction_kedro"' in dag_source


def test_generating_without_a_model_names_the_missing_parameter(kedro_project, tmp_path):
    pytest.importorskip("kedro_airflow", reason="kedro-airflow writes the DAG files (make install brings it)")
    code, output = create_dag(kedro_project, tmp_path, "project_path=/srv/retraction_kedro")
    assert code != 0
    assert "--params model_name=" in output
