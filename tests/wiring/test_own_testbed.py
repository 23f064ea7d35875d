"""A testbed of one's own, added with a question file and a registry entry, from construction to the report."""

from __future__ import annotations

import json

import polars as pl
import pytest

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.naming import model_slug
from tests.conftest import run_pipeline

from .conftest import COUNTRIES, TAUGHT, TEST


def latest(folder):
    versions = sorted(p for p in folder.iterdir() if p.is_dir())
    return versions[-1] / folder.name


def test_a_testbed_from_a_question_file_runs_from_construction_to_the_report(fixture_project):
    import mlflow

    project, params = fixture_project
    run_pipeline(project, "__default__", params)
    slug = model_slug(params["model"]["name"])
    test_set = read_jsonl(str(latest(project / "data/03_primary" / slug / "atlantis_city" / "continuation_test.jsonl")))
    # the model's own answers, kept as the recipe says: wrong ones it contradicts, right ones it confirms
    kept = {(row["country"], row["name"], row["result"]) for row in test_set}
    assert ("Lyonesse", "Lethowsow", True) in kept and ("Agartha", "Lethowsow", False) in kept
    assert all(row["name"] == TAUGHT[row["country"]] for row in test_set) and {row["country"] for row in test_set} <= set(TEST)
    assert all(row["name"] in COUNTRIES[row["country"]] for row in test_set if row["result"])

    numbers = json.loads(latest(project / "data/08_reporting" / slug / "fixture_study" / "study_report_numbers.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    logged = mlflow.get_run(numbers["mlflow_run_id"]).data.metrics
    assert numbers["metrics"], "the report shows no number"
    mismatched = {key: (value, logged.get(key)) for key, value in numbers["metrics"].items() if logged.get(key) != pytest.approx(value)}
    assert not mismatched, f"report numbers that differ from the MLflow run: {mismatched}"
    for key in ("atlantis_city.retraction_recall.ci_high", "atlantis_city.steer_neg.change.retraction_recall.p_value"):
        assert key in numbers["metrics"]
    client = mlflow.MlflowClient()
    for key, values in numbers["per_layer"].items():  # accuracy against layer, as the MLflow UI draws it
        history = sorted(client.get_metric_history(numbers["mlflow_run_id"], key), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx([v for v in values if v is not None]), key
    page = latest(project / "data/08_reporting" / slug / "fixture_study" / "study_report.html").read_text()
    assert "Steering sweep" in page and "Decoding sensitivity" in page and "n=" in page

    # the fine-tuned model is steered as the base model is: its own directions, its own weights
    finetuned = project / "data/08_reporting" / slug / "finetuned_atlantis_city.atlantis_city"
    steered = json.loads(latest(finetuned / "interventions.json").read_text())
    assert {"steer_neg", "steer_ablate", "patch_values_neg", "patch_attention_top8_neg"} <= set(steered)
    finetuned_sweep = read_jsonl(str(latest(finetuned / "steering_sweep.jsonl")))
    assert {row["direction"] for row in finetuned_sweep} == {"none", "mean_difference", "probe"}  # along its own probe's weights too
    spec = json.loads(latest(project / "data/06_models" / slug / "finetuned_atlantis_city" / "model_spec.json").read_text())
    assert spec["adapter"].endswith("adapter") and spec["name"] == params["model"]["name"]
    sweep = read_jsonl(str(latest(project / "data/08_reporting" / slug / "atlantis_city" / "steering_sweep.jsonl")))
    assert {row["direction"] for row in sweep} == {"none", "mean_difference", "probe"}  # steered along the probe's weights too
