"""Load a folder of DAG files with Airflow's own parser (its DagBag) and report what Airflow made of them.

Runs in the Airflow environment, not the project's: `.venv-airflow/bin/python deploy/airflow/parse_dags.py airflow_dags`
(`make airflow-check`). Prints one line per DAG and task; `--json PATH` also writes every DAG's tasks, their upstream
tasks and the arguments of each task's call (the `kedro run` command line). Exit status 1 when a file fails to import
or the folder holds no DAG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag


def parse(folder: Path) -> dict:
    bag = DagBag(str(folder))
    dags = {
        dag_id: {
            "file": dag.fileloc,
            "max_active_runs": dag.max_active_runs,
            "schedule": None if dag.schedule is None else str(dag.schedule),
            "tasks": {
                task.task_id: {
                    "upstream": sorted(task.upstream_task_ids),
                    "args": [
                        list(arg) if isinstance(arg, (list, tuple)) else arg for arg in getattr(task, "op_args", ())
                    ],
                    "queue": task.queue,
                    "retries": task.retries,
                }
                for task in dag.tasks
            },
        }
        for dag_id, dag in sorted(bag.dags.items())
    }
    return {"import_errors": {str(path): str(error) for path, error in bag.import_errors.items()}, "dags": dags}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of DAG files (searched recursively)")
    parser.add_argument("--json", type=Path, help="also write the parsed DAGs here")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder (make airflow-dag writes the DAGs to airflow_dags/)")
    result = parse(args.folder)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    for path, error in result["import_errors"].items():
        print(f"import error in {path}:\n{error}", file=sys.stderr)
    for dag_id, dag in result["dags"].items():
        print(f"{dag_id} ({dag['file']}): {len(dag['tasks'])} tasks")
        for task_id, task in dag["tasks"].items():
            print(f"  {task_id} <- {', '.join(task['upstream']) or '(start)'}")
    if not result["dags"] and not result["import_errors"]:
        print(f"no DAG in {args.folder}", file=sys.stderr)
    return 1 if result["import_errors"] or not result["dags"] else 0


if __name__ == "__main__":
    sys.exit(main())
