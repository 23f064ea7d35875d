"""`kedro viz build` exports every pipeline offline, namespaces as collapsible groups, and plot previews."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = [pytest.mark.integration]
PIPELINES = {"data_construction", "activations", "evaluation", "probing", "interventions", "sft", "report", "__default__"}


def test_static_export_holds_every_pipeline_and_previews(evaluated_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    done = subprocess.run([str(kedro), "viz", "build", "--include-previews"], cwd=evaluated_project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    api = evaluated_project / "build" / "api"
    main = json.loads((api / "main").read_text())
    assert PIPELINES <= {p["id"] for p in main["pipelines"]}
    for name in PIPELINES:
        assert json.loads((api / "pipelines" / name).read_text())["nodes"], name
    groups = set(main["modular_pipelines"])  # namespaces collapse per testbed and per fine-tuned model
    assert {"geo_city", "geo_currency", "geo_truthfulness", "finetuned_geo_city", "finetuned_geo_city.geo_currency", "embedded_study"} <= groups
    ids = {node["name"]: node["id"] for node in main["nodes"]}
    plot = json.loads((api / "nodes" / ids["geo_city.probe_accuracy_plot"]).read_text())
    assert plot["preview_type"] == "PlotlyPreview" and plot["preview"]["data"]
    table = json.loads((api / "nodes" / ids["geo_city.judged_continuations_test"]).read_text())
    assert table["preview_type"] == "TablePreview" and "retracted" in table["preview"]["columns"]
