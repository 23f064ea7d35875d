"""The study as jobs: the default pipeline, the jobs it should make (one per top-level namespace, ordered by
the datasets they exchange), and DAG files written by kedro-airflow with the project's template."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from kedro.framework.cli.project import run as kedro_run_command
from kedro.pipeline import Pipeline

from tests.conftest import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "deploy" / "airflow" / "dag_template.j2"
MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct")


def job(node) -> str:
    return node.namespace.split(".")[0] if node.namespace else node.name


def dataset_dependencies(pipeline: Pipeline) -> dict[str, set[str]]:
    """For each job, the jobs whose nodes write a dataset its nodes read (worked out from the nodes alone)."""
    writer = {output: job(node) for node in pipeline.nodes for output in node.outputs}
    dependencies: dict[str, set[str]] = {job(node): set() for node in pipeline.nodes}
    for node in pipeline.nodes:
        dependencies[job(node)] |= {
            writer[name] for name in node.inputs if name in writer and writer[name] != job(node)
        }
    return dependencies


def kedro_run_options(argv: list[str]) -> dict:
    """``argv`` (``kedro run ...``) as Kedro's own ``run`` command parses it."""
    assert argv[1] == "run", argv
    return kedro_run_command.make_context("run", list(argv[2:])).params


def task_commands(dag_source: str) -> dict[str, list[str]]:
    """``{task_id: argv}`` read from a generated DAG file without importing Airflow: the ``KEDRO_RUN`` list
    plus the arguments each ``kedro_run.override(task_id=...)(KEDRO_RUN + [...])`` call appends."""
    tree = ast.parse(dag_source)
    base = next(
        ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "KEDRO_RUN"
    )
    commands = {}
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Call)
            and getattr(call.func.func, "attr", None) == "override"
        ):
            (keyword,) = call.func.keywords
            commands[ast.literal_eval(keyword.value)] = base + ast.literal_eval(call.args[0].right)
    return commands


@pytest.fixture(scope="module")
def kedro_project():
    """The project bootstrapped as the kedro CLI does, afresh for each module (the registry reads conf/ from the
    working directory, and another test may have bootstrapped a project of its own)."""
    from kedro.framework.startup import bootstrap_project

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)
        yield bootstrap_project(PROJECT_ROOT)


@pytest.fixture(scope="module")
def default_pipeline(kedro_project) -> Pipeline:
    from kedro.framework.project import pipelines

    return pipelines["__default__"]


def create_dag(metadata, target: Path, params: str) -> tuple[int, str]:
    """``kedro airflow create --group-by namespace --jinja-file <template>`` in process; (exit code, output)."""
    from click.testing import CliRunner
    from kedro_airflow.plugin import create

    args = ["--group-by", "namespace", "--jinja-file", str(TEMPLATE), "--target-dir", str(target), "--params", params]
    result = CliRunner().invoke(create, args, obj=metadata)
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")
