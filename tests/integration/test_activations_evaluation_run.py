"""activations then evaluation on a small embedded construction, as `kedro run --pipelines ...` does."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.evidence import flatten, paired_difference_by_layer
from retraction_kedro.lm import ModelSpec, capture_hidden_states, continuation_prompt, load_language_model
from tests.conftest import MODEL_CACHE, PROJECT_ROOT, run_pipeline

from .test_data_construction_run import SLUG, latest

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
PROBE_KEYS = ("weight", "mean", "std", "layers")
TESTBEDS = ["geo_city"]


def test_hidden_states_have_the_right_shape_and_equal_a_per_example_recomputation(evaluated_project):
    for testbed in TESTBEDS:
        rows = read_jsonl(str(latest(evaluated_project / "data/07_model_output" / SLUG / testbed / "continuation_responses_test.jsonl")))
        tensors = load_file(latest(evaluated_project / "data/04_feature" / SLUG / testbed / "continuation_hidden_test.safetensors"))
        assert tensors["hidden"].shape == (len(rows), 30, 576)
    lm = load_language_model(ModelSpec(cache_dir=str(MODEL_CACHE)))
    rows = read_jsonl(str(latest(evaluated_project / "data/03_primary" / SLUG / "geo_city" / "continuation_test.jsonl")))[:8]
    stored = load_file(latest(evaluated_project / "data/04_feature" / SLUG / "geo_city" / "continuation_hidden_test.safetensors"))["hidden"][:8]
    single = torch.cat([capture_hidden_states(lm, [continuation_prompt(lm.tokenizer, r["messages"])], show_progress=False) for r in rows])
    error = ((stored - single).norm(dim=-1) / single.norm(dim=-1)).max().item()
    print(f"first {len(rows)} examples: max relative error vs per-example recomputation {error:.2e}")
    assert error < 1e-4


def test_retraction_metrics_reach_the_report_and_mlflow(evaluated_project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{evaluated_project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string="metrics.`geo_city.retraction_recall.n` >= 0")
    assert len(runs) == 1
    logged = runs[0].data.metrics
    for testbed in TESTBEDS:
        report = json.loads(latest(evaluated_project / "data/08_reporting" / SLUG / testbed / "retraction.json").read_text())
        judged = read_jsonl(str(latest(evaluated_project / "data/07_model_output" / SLUG / testbed / "judged_continuations_test.jsonl")))
        wrong = [row for row in judged if not row["result"]]
        recall = report["retraction_recall"]
        print(testbed, {k: v["value"] if isinstance(v, dict) else v for k, v in report.items()})
        assert recall["n"] == len(wrong) > 0 and recall["k"] == sum(row["retracted"] for row in wrong)
        assert recall["ci_low"] <= recall["value"] <= recall["ci_high"] and recall["ci_high"] > recall["ci_low"]
        for key in ("retraction_recall", "retraction_recall.ci_low", "retraction_recall.ci_high", "retraction_recall.n", "well_formed"):
            assert logged[f"{testbed}.{key}"] == pytest.approx(flatten({"retraction_recall": recall, "well_formed": report["well_formed"]})[key])
        if report["retraction_precision"]["value"] is None:  # nothing retracted: undefined, not 0
            assert f"{testbed}.retraction_precision" not in logged and logged[f"{testbed}.retraction_precision.n"] == 0


def test_probing_logs_per_layer_metrics_and_writes_its_artifacts(evaluated_project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{evaluated_project / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string="metrics.`geo_city.probe.retraction_prediction_accuracy` >= 0")
    assert len(runs) == 1
    run_id = runs[0].info.run_id
    history = client.get_metric_history(run_id, "geo_truthfulness.probe.accuracy")
    assert sorted(m.step for m in history) == list(range(30))  # one point per layer: accuracy against layer
    params = runs[0].data.params  # flattened parameter groups, as the MLflow UI's columns
    assert params["probing.batch_size"] == "64" and params["probing.trainer"] == "batched"
    (artifact,) = client.list_artifacts(run_id, "geo_city")
    assert artifact.path == "geo_city/probe_accuracy_by_layer.html"
    page = Path(client.download_artifacts(run_id, artifact.path)).read_text()
    assert "plotly" in page and "retraction prediction accuracy" in page
    probes = load_file(latest(evaluated_project / "data/06_models" / SLUG / "geo_truthfulness" / "belief_probes.safetensors"))
    assert set(PROBE_KEYS) <= set(probes) and probes["weight"].shape == (30, 576)
    plot = json.loads(latest(evaluated_project / "data/08_reporting" / SLUG / "geo_city" / "probe_accuracy_by_layer.json").read_text())
    assert len(plot["data"]) == 3


def test_batched_probes_agree_with_scikit_learn_on_every_layer(evaluated_project):
    """The two trainers on the embedded model's real truthfulness activations, same split and selection."""
    import random

    import yaml

    from retraction_kedro.probes import ProbeSchedule, fit_sklearn_probes, predict, train_probes

    folder = evaluated_project / "data/04_feature" / SLUG / "geo_truthfulness"
    hidden = {s: load_file(latest(folder / f"hidden_{s}.safetensors"))["hidden"] for s in ("train", "test")}
    labels = {s: torch.tensor([r["label"] for r in read_jsonl(str(latest(folder / f"index_{s}.jsonl")))]) for s in ("train", "test")}
    probing = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_probing.yml").read_text())["probing"]
    order = list(range(len(labels["train"])))
    random.Random(probing["seed"]).shuffle(order)
    cut = int(len(order) * probing["validation_fraction"])
    val, fit = sorted(order[:cut]), sorted(order[cut:])
    x, y, xv, yv = hidden["train"][fit], labels["train"][fit], hidden["train"][val], labels["train"][val]
    batched = train_probes(x, y, xv, yv, [ProbeSchedule(**s) for s in probing["schedules"]], seed=probing["seed"])
    sk = fit_sklearn_probes(x, y, probing["sklearn_c"], probing["seed"], xv, yv)
    right_batched = (predict(batched, hidden["test"]) > 0.5) == labels["test"].bool().unsqueeze(1)
    right_sklearn = (predict(sk, hidden["test"]) > 0.5) == labels["test"].bool().unsqueeze(1)
    differences = paired_difference_by_layer(right_sklearn.numpy(), right_batched.numpy(), seed=0)
    a, b = right_batched.float().mean(0), right_sklearn.float().mean(0)
    print(f"\n{'layer':>5}{'batched':>9}{'sklearn':>9}{'gap':>7}   95% paired-bootstrap interval of the gap, McNemar p")
    for layer, (u, v, d) in enumerate(zip(a.tolist(), b.tolist(), differences)):
        print(f"{layer:>5}{u:>9.3f}{v:>9.3f}{u - v:>7.3f}   [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]  p={d['p_value']:.3f}")
    gap = (a - b).abs()
    print(f"n={len(labels['test'])} test examples; max gap {gap.max():.3f}, mean gap {gap.mean():.3f}")
    # Two estimators on ~1200 examples, scored on ~1500 (the probing issue's criterion, restated in #14).
    assert gap.mean() <= 0.02 and gap.max() <= 0.05


def test_interventions_log_each_configuration_beside_the_baseline(evaluated_project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{evaluated_project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string="metrics.`geo_city.steer_none.retraction_rate` >= 0")
    assert len(runs) == 1
    logged = runs[0].data.metrics
    choice = json.loads(latest(evaluated_project / "data/08_reporting" / SLUG / "geo_city" / "steering_choice.json").read_text())
    # the sweep's choice runs only when the rule found a setting; the configured runs always
    from_sweep = ("steer_neg", "steer_pos", "steer_ablate") if choice["setting"] else ()
    for name in ("steer_none", "patch_none", "patch_steered_neg", "patch_values_neg", "patch_attention_neg", "patch_attention_top8_neg", *from_sweep):
        assert f"geo_city.{name}.retraction_recall.n" in logged
        if name not in ("steer_none", "patch_none"):
            assert f"geo_city.{name}.change.retraction_rate.p_value" in logged
    if not choice["setting"]:
        assert not any(key.startswith(("geo_city.steer_neg.", "geo_city.steer_pos.")) for key in logged)
    folder = evaluated_project / "data/07_model_output" / SLUG / "geo_city"
    runs = read_jsonl(str(latest(folder / "judged_intervention_continuations.jsonl")))
    evaluated = read_jsonl(str(latest(folder / "judged_continuations_test.jsonl")))
    # the unsteered run is the evaluation's own continuations (same generation settings), not a second generation
    assert [r["response"] for r in runs if r["configuration"] == "steer_none"] == [r["response"] for r in evaluated]
    sweep = read_jsonl(str(latest(evaluated_project / "data/08_reporting" / SLUG / "geo_city" / "steering_sweep.jsonl")))
    assert [row["alpha"] for row in sweep] == [0.0, -0.1, 0.1]
    assert sweep[1]["relative_size"] == pytest.approx(0.1)  # relative scale: a tenth of the mean residual norm
    assert choice["split"] == "train" and choice["examples"] <= 16
