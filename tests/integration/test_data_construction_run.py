"""`kedro run --pipelines data_construction` on the embedded model with small parameters."""

import json
import shutil
from pathlib import Path

import pytest

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.naming import model_slug
from retraction_kedro.pipelines.data_construction.nodes import ConstructionError
from tests.conftest import SMALL_CONSTRUCTION, run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
SLUG = model_slug("HuggingFaceTB/SmolLM2-135M-Instruct")
SHARED_PAPER_DATA = Path(__file__).resolve().parents[3] / "shared" / "paper-data"


def latest(path: Path) -> Path:
    """The newest Kedro version of a versioned artifact."""
    return sorted(path.iterdir())[-1] / path.name


def test_embedded_construction_builds_both_classes(constructed_project):
    kedro_project = constructed_project
    for testbed in ("geo_city",):
        folder = kedro_project / "data/03_primary" / SLUG / testbed
        for split in ("train", "test"):
            rows = read_jsonl(str(latest(folder / f"continuation_{split}.jsonl")))
            results = [row["result"] for row in rows]
            assert True in results and False in results, (testbed, split)
            assert results.count(True) == results.count(False)  # balanced
            assert all(row["messages"][-1] == {"role": "assistant", "content": row["name"]} for row in rows)
        summary = json.loads(latest(kedro_project / "data/08_reporting" / SLUG / testbed / "construction_summary.json").read_text())
        print(testbed, summary)
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
    params = {"construction": {"max_questions_per_split": 6, "sample_seeds": [0]}, "geo_currency": {"testbed": {"sample_seeds": [0]}}}
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


@pytest.mark.skipif(not SHARED_PAPER_DATA.exists(), reason="../shared/paper-data is not present")
def test_paper_question_sets_run_the_recipe_or_stop_with_counts(kedro_project):
    shutil.copytree(SHARED_PAPER_DATA, kedro_project / "data/01_raw/paper")
    params = {
        "construction": {"max_questions_per_split": 8, "sample_seeds": [0]},
        "celebrity": {"testbed": {"sample_seeds": [0]}},
        "paper_data": {"allow_download": False},
    }
    try:
        run_pipeline(kedro_project, "data_construction_paper", params)
    except ConstructionError as error:  # a 135M model knows few of these people
        message = str(error)
        print(message)
        assert "per-stage counts" in message and "'questions': 16" in message
    else:
        assert any((kedro_project / "data/03_primary" / SLUG).rglob("continuation_test.jsonl"))


@pytest.mark.skipif(not SHARED_PAPER_DATA.exists(), reason="../shared/paper-data is not present")
def test_released_continuation_sets_load_through_the_same_catalog_entries(kedro_project):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    shutil.copytree(SHARED_PAPER_DATA, kedro_project / "data/01_raw/paper")
    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project, env="paper_released") as session:
        catalog = session.load_context().catalog
        for testbed, split, rows in (("wikidata", "test", 1202), ("celebrity", "test", 826)):
            table = catalog.load(f"{testbed}.continuation_{split}")
            assert table.height == rows
            assert {"question", "messages", "name", "result", "index"} <= set(table.columns)
