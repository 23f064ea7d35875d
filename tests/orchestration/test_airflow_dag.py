"""The DAGs as Airflow sees them: the README's `make airflow-dag` for two models, loaded by Airflow's own parser
(its DagBag, deploy/airflow/parse_dags.py), and one DAG run by Airflow (`airflow dags test`) with a stand-in for
kedro that records its calls. Airflow runs in its own environment (.venv-airflow), which `make test` and
`make test-airflow` make; without it, or Airflow in this interpreter, these tests skip."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from retraction_kedro.naming import model_slug
from tests.conftest import PROJECT_ROOT
from tests.orchestration.conftest import MODELS, create_dag, dataset_dependencies, kedro_run_options


def airflow_python() -> str | None:
    """$AIRFLOW_PYTHON, else .venv-airflow's interpreter, else this one when it has Airflow."""
    if os.environ.get("AIRFLOW_PYTHON"):
        assert os.path.exists(os.environ["AIRFLOW_PYTHON"]), (
            f"AIRFLOW_PYTHON={os.environ['AIRFLOW_PYTHON']} does not exist"
        )
        return os.environ["AIRFLOW_PYTHON"]
    local = PROJECT_ROOT / ".venv-airflow" / "bin" / "python"
    if local.exists():
        return str(local)
    return sys.executable if importlib.util.find_spec("airflow") else None


def require_airflow() -> str:
    python = airflow_python()
    if python is None:
        pytest.skip("no Airflow environment: `make test` or `make test-airflow` makes .venv-airflow")
    pytest.importorskip("kedro_airflow", reason="kedro-airflow writes the DAG files (make install brings it)")
    return python


def airflow_env(home) -> dict[str, str]:
    return os.environ | {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    python = require_airflow()
    root = tmp_path_factory.mktemp("airflow")
    make = [
        "make", "--no-print-directory", "-o", ".venv/.installed", "airflow-dag", f"MODELS={' '.join(MODELS)}",
        f"DAGS_DIR={root / 'dags'}", "PROJECT_PATH=/srv/retraction_kedro", "KEDRO_COMMAND=/srv/venv/bin/kedro",
    ]  # fmt: skip
    made = subprocess.run(make, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    env = airflow_env(root / "home")
    script = PROJECT_ROOT / "deploy" / "airflow" / "parse_dags.py"
    loaded = subprocess.run(
        [python, script, root / "dags", "--json", root / "dags.json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    return root / "dags", json.loads((root / "dags.json").read_text())


def dag_of(parsed, model: str) -> dict:
    folder, result = parsed
    (dag,) = [
        dag for dag in result["dags"].values() if dag["file"].startswith(str(folder / model_slug(model)) + os.sep)
    ]
    return dag


def test_airflow_loads_one_dag_per_model(parsed):
    _, result = parsed
    assert result["import_errors"] == {}
    assert len(result["dags"]) == len(MODELS)
    for model in MODELS:
        dag = dag_of(parsed, model)
        assert dag["max_active_runs"] == 1  # a task reads its inputs' latest versions: one run of a model at a time
        assert dag["schedule"] is None


def test_tasks_are_the_namespaces_in_dataset_order(parsed, default_pipeline):
    dependencies = dataset_dependencies(default_pipeline)
    for model in MODELS:
        tasks = dag_of(parsed, model)["tasks"]
        assert {task: set(spec["upstream"]) for task, spec in tasks.items()} == dependencies


def test_each_task_runs_kedro_on_its_namespace_and_model(parsed):
    for model in MODELS:
        for task, spec in dag_of(parsed, model)["tasks"].items():
            (argv,) = spec["args"]
            assert argv[0] == "/srv/venv/bin/kedro"
            options = kedro_run_options(argv)
            assert (options["pipelines"], options["namespaces"], options["params"]) == (
                ["__default__"],
                [task],
                {"model": {"name": model}},
            )


def test_airflow_runs_each_namespace_after_its_inputs_and_nothing_after_a_failure(
    kedro_project, default_pipeline, tmp_path
):
    """A failed `kedro run` fails its task (so no later job reads stale inputs); every other job still runs, in the
    project directory, after the jobs it reads from."""
    python = require_airflow()
    failing, calls, project = "finetuned_geo_city", tmp_path / "calls.txt", tmp_path / "project"
    project.mkdir()
    kedro = tmp_path / "kedro"
    kedro.write_text(f'#!/bin/sh\necho "$(pwd) $*" >> {calls}\ncase "$*" in *"--namespaces {failing}") exit 3;; esac\n')
    kedro.chmod(0o755)
    params = f"model_name=org/model,project_path={project},kedro_command={kedro},retries=0"
    code, output = create_dag(kedro_project, tmp_path / "dags", params)
    assert code == 0, output
    env = airflow_env(tmp_path / "home") | {"AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags")}
    subprocess.run([python, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, check=True)
    run = [python, "-m", "airflow", "dags", "test", "retraction_kedro__org-model"]
    ran = subprocess.run(run, env=env, capture_output=True, text=True, check=False)
    assert ran.returncode != 0, ran.stdout[-3000:]  # the DAG run failed

    lines = calls.read_text().splitlines()
    assert all(line.startswith(f"{project} run ") and "model.name=org/model" in line for line in lines), lines
    ran_jobs = [line.split("--namespaces ")[-1] for line in lines]
    dependencies = dataset_dependencies(default_pipeline)
    blocked = {failing}
    while grown := {job for job, upstream in dependencies.items() if upstream & blocked} - blocked:
        blocked |= grown
    assert sorted(ran_jobs) == sorted(set(dependencies) - blocked | {failing})
    for position, job in enumerate(ran_jobs):
        assert dependencies[job] <= set(ran_jobs[:position]), f"{job} ran before its inputs: {ran_jobs}"
