"""activations then evaluation on a small embedded construction, as `kedro run --pipelines ...` does."""

import json

import pytest
import torch
from safetensors.torch import load_file

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.lm import ModelSpec, capture_hidden_states, continuation_prompt, load_language_model
from tests.conftest import PROJECT_ROOT, run_pipeline

from .test_data_construction_run import SLUG, latest

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
TESTBEDS = ["geo_city"]


@pytest.fixture(scope="module")
def evaluated_project(constructed_project):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(constructed_project)
        params = {"activations": {"max_new_tokens": 32}}
        run_pipeline(constructed_project, "activations", params, namespaces=TESTBEDS)
        run_pipeline(constructed_project, "evaluation", params, namespaces=TESTBEDS)
    return constructed_project


def test_hidden_states_have_the_right_shape_and_equal_a_per_example_recomputation(evaluated_project):
    for testbed in TESTBEDS:
        rows = read_jsonl(str(latest(evaluated_project / "data/07_model_output" / SLUG / testbed / "continuation_responses_test.jsonl")))
        tensors = load_file(latest(evaluated_project / "data/04_feature" / SLUG / testbed / "continuation_hidden_test.safetensors"))
        assert tensors["hidden"].shape == (len(rows), 30, 576)
    lm = load_language_model(ModelSpec(cache_dir=str(PROJECT_ROOT / "data/06_models")))
    rows = read_jsonl(str(latest(evaluated_project / "data/03_primary" / SLUG / "geo_city" / "continuation_test.jsonl")))[:8]
    stored = load_file(latest(evaluated_project / "data/04_feature" / SLUG / "geo_city" / "continuation_hidden_test.safetensors"))["hidden"][:8]
    single = torch.cat([capture_hidden_states(lm, [continuation_prompt(lm.tokenizer, r["messages"])], show_progress=False) for r in rows])
    error = ((stored - single).norm(dim=-1) / single.norm(dim=-1)).max().item()
    print(f"first {len(rows)} examples: max relative error vs per-example recomputation {error:.2e}")
    assert error < 1e-4


def test_retraction_metrics_reach_the_report_and_mlflow(evaluated_project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{evaluated_project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", order_by=["attributes.start_time DESC"])
    logged = runs[0].data.metrics
    for testbed in TESTBEDS:
        report = json.loads(latest(evaluated_project / "data/08_reporting" / SLUG / testbed / "retraction.json").read_text())
        print(testbed, {k: round(v, 3) for k, v in report.items()})
        assert report["wrong_retracted"] + report["wrong_not_retracted"] > 0
        assert 0.0 <= report["retraction_recall"] <= 1.0
        assert logged[f"{testbed}.retraction_recall"] == pytest.approx(report["retraction_recall"])
        assert logged[f"{testbed}.judge_invalid"] == 0.0
