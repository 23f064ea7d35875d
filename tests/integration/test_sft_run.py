"""`kedro run --pipelines sft` (the geo_city fine-tuned model) on the small embedded construction."""

import json

import pytest
import torch
from safetensors.torch import load_file

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.config import Registry
from retraction_kedro.pipelines.sft import create_pipeline
from tests.conftest import run_pipeline

from .test_data_construction_run import SLUG, latest

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
MODEL = "finetuned_geo_city"


@pytest.fixture(scope="module")
def finetuned_project(evaluated_project):
    # geo_city only (the shared construction has no geo_currency sets), so no comparison node; the fine-tuned
    # model's own probes (its truthfulness hidden states: most of the time) run on the tiny model in tests/wiring
    registry = Registry.load(evaluated_project)
    skipped = ("geo_currency", "geo_truthfulness", "probes_on_testbed")
    nodes = [n.name for n in create_pipeline(registry, registry.default_study).nodes if n.name.startswith(f"{MODEL}.") and not any(s in n.name for s in skipped)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(evaluated_project)
        run_pipeline(evaluated_project, "sft", {"activations": {"max_new_tokens": 32}}, node_names=nodes)
    return evaluated_project


def test_training_logs_a_decreasing_loss_curve_per_step(finetuned_project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{finetuned_project / 'mlflow.db'}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string=f"metrics.`{MODEL}.train_loss` >= 0")
    history = sorted(mlflow.MlflowClient().get_metric_history(run.info.run_id, f"{MODEL}.train_loss"), key=lambda m: m.step)
    examples = read_jsonl(str(latest(finetuned_project / "data/05_model_input" / SLUG / MODEL / "sft_examples.jsonl")))
    assert [m.step for m in history] == list(range(1, 2 * -(-len(examples) // 8) + 1))  # 2 epochs of batch 8
    print("loss", [round(m.value, 3) for m in history])
    assert history[-1].value < history[0].value
    adapter = latest(finetuned_project / "data/06_models" / SLUG / MODEL / "lora") / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()


def test_the_finetuned_model_runs_through_the_same_templates(finetuned_project):
    base = read_jsonl(str(latest(finetuned_project / "data/07_model_output" / SLUG / "geo_city" / "judged_continuations_test.jsonl")))
    tuned = read_jsonl(str(latest(finetuned_project / "data/07_model_output" / SLUG / f"{MODEL}.geo_city" / "judged_continuations_test.jsonl")))
    assert [r["name"] for r in tuned] == [r["name"] for r in base]  # the base model's test set
    assert [r["response"] for r in tuned] != [r["response"] for r in base]  # from other weights
    report = json.loads(latest(finetuned_project / "data/08_reporting" / SLUG / f"{MODEL}.geo_city" / "retraction.json").read_text())
    print({k: v["value"] if isinstance(v, dict) else v for k, v in report.items()})
    assert report["retraction_recall"]["n"] == sum(not r["result"] for r in tuned)
    hidden = load_file(latest(finetuned_project / "data/04_feature" / SLUG / f"{MODEL}.geo_city" / "continuation_hidden_test.safetensors"))["hidden"]
    base = load_file(latest(finetuned_project / "data/04_feature" / SLUG / "geo_city" / "continuation_hidden_test.safetensors"))["hidden"]
    assert hidden.shape == base.shape and not torch.equal(hidden, base)  # the adapter's weights, captured the same way
