"""The DAGs as Airflow sees them: the README's `make airflow-dag` for two models, loaded by Airflow's own parser
(its DagBag, deploy/airflow/parse_dags.py) in the Airflow environment. `make test-airflow` makes that environment
(.venv-airflow); without it, or Airflow in this interpreter, these tests skip."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from retraction_kedro.naming import model_slug
from tests.conftest import PROJECT_ROOT
from tests.orchestration.conftest import MODELS, dataset_dependencies, kedro_run_options


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


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    python = airflow_python()
    if python is None:
        pytest.skip("no Airflow environment: `make test-airflow` makes .venv-airflow")
    pytest.importorskip("kedro_airflow", reason="kedro-airflow writes the DAG files (make install brings it)")
    root = tmp_path_factory.mktemp("airflow")
    make = [
        "make", "--no-print-directory", "-o", ".venv/.installed", "airflow-dag", f"MODELS={' '.join(MODELS)}",
        f"DAGS_DIR={root / 'dags'}", "PROJECT_PATH=/srv/retraction_kedro", "KEDRO_COMMAND=/srv/venv/bin/kedro",
    ]  # fmt: skip
    made = subprocess.run(make, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    env = os.environ | {"AIRFLOW_HOME": str(root / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
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
