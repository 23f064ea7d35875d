"""`kedro run --pipelines data_construction` on the embedded model with small parameters."""

import json
from pathlib import Path

import pytest

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.naming import model_slug
from retraction_kedro.pipelines.data_construction.nodes import ConstructionError
from tests.conftest import SMALL_CONSTRUCTION, run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
SLUG = model_slug("HuggingFaceTB/SmolLM2-135M-Instruct")


def latest(path: Path) -> Path:
    """The newest Kedro version of a versioned artifact."""
    return sorted(path.iterdir())[-1] / path.name


def test_embedded_construction_builds_both_classes(constructed_project):
    kedro_project = constructed_project
    for testbed in ("geo_city",):
        folder = kedro_project / "data/03_primary" / SLUG / testbed
        summary = json.loads(latest(kedro_project / "data/08_reporting" / SLUG / testbed / "construction_summary.json").read_text())
        print(testbed, summary)
        for split in ("train", "test"):
            rows = read_jsonl(str(latest(folder / f"continuation_{split}.jsonl")))
            results = [row["result"] for row in rows]
            assert True in results and False in results, (testbed, split)
            assert all(row["messages"][-1] == {"role": "assistant", "content": row["name"]} for row in rows)
            # every contradicted wrong answer of the split's questions, and every confirmed right one (SFT balances its own)
            assert results.count(False) == summary["counts"][f"{split}_kept_wrong"] and results.count(True) == summary["counts"][f"{split}_kept_correct"]
        assert summary["counts"]["samples"] == summary["counts"]["questions"] * len(SMALL_CONSTRUCTION["construction"]["sample_seeds"])

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{kedro_project / 'mlflow.db'}")
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string="metrics.`geo_city.construction.samples` > 0"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["geo_city.construction.samples"] == summary["counts"]["samples"]
    assert run.data.params["construction.top_p"] == "0.95"


def test_same_seeds_give_the_same_samples(kedro_project):
    params = {"construction": {"max_questions_per_split": 6, "sample_seeds": [0]}, "testbeds": {"geo_currency": {"sample_seeds": [0]}}}
    for _ in range(2):
        try:
            run_pipeline(kedro_project, "data_construction", params)
        except ConstructionError as error:  # so few questions may leave a class empty; samples are saved before that
            assert "per-stage counts" in str(error)
    for testbed in ("geo_city", "geo_currency"):
        versions = sorted((kedro_project / "data/02_intermediate" / SLUG / testbed / "answer_samples.jsonl").iterdir())
        assert len(versions) == 2
        first, second = (read_jsonl(str(v / "answer_samples.jsonl")) for v in versions)
        assert first == second
