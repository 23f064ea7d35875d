"""The report's numbers against an MLflow run that logged the upstream nodes' metrics through the
catalog's own MLflow datasets (prefixes read from conf/base/catalog.yml)."""

import random

import polars as pl
import pytest
import yaml

from retraction_kedro.pipelines.evaluation.nodes import score_retraction
from retraction_kedro.pipelines.interventions.nodes import _mlflow
from retraction_kedro.pipelines.probing.nodes import summarize_testbed, summarize_truthfulness
from retraction_kedro.pipelines.reporting.nodes import build_study_report
from retraction_kedro.pipelines.sft.nodes import compare_with_base
from tests.conftest import PROJECT_ROOT

TESTBEDS = ("geo_city", "geo_currency")
CATALOG = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())


def _prefix(pattern: str, **names: str) -> str:
    return CATALOG[pattern]["prefix"].format(**names)


def _judged(seed: int, n: int = 20) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame({"result": [i % 2 == 0 for i in range(n)], "retracted": [rng.random() < 0.3 for _ in range(n)], "judge_valid": [True] * n})


def _layers(seed: int, columns: tuple[str, ...]) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame({"layer": list(range(6)), **{c: [rng.random() for _ in range(6)] for c in columns}})


PROBE_COLUMNS = ("correctness_accuracy", "retraction_prediction_accuracy", "believed_wrong_precision", "believed_right_precision")


@pytest.fixture
def study(tmp_path):
    """Upstream outputs and the MLflow run they were logged to, as `kedro run` would leave them."""
    import mlflow
    from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    inputs, logged = {}, []

    def log(prefix, metrics):
        logged.append((prefix, metrics))

    truth = _layers(0, ("accuracy", "balanced_accuracy"))
    inputs["truthfulness_probes"], history = summarize_truthfulness(truth)
    log(_prefix("{namespace}.probe_metrics_by_layer", namespace="geo_truthfulness"), history)
    steering_names = ("steer_none", "steer_neg", "steer_pos")
    for k, t in enumerate(TESTBEDS):
        inputs[f"continuation_train__{t}"] = pl.DataFrame({"result": [True, False] * 3})
        inputs[f"continuation_test__{t}"] = pl.DataFrame({"result": [True, False] * 2})
        inputs[f"retraction__{t}"], metrics = score_retraction(_judged(k))
        log(_prefix("{testbed}.retraction_metrics", testbed=t), metrics)
        summary, history, _, _ = summarize_testbed(_layers(k + 1, PROBE_COLUMNS), truth, t)
        inputs[f"probes__{t}"] = summary
        log(_prefix("{namespace}.probe_metrics_by_layer", namespace=t), history)
        steering = {name: score_retraction(_judged(10 * k + j))[0] for j, name in enumerate(steering_names)}
        inputs[f"steering__{t}"] = steering
        log(_prefix("{testbed}.steering_metrics", testbed=t), _mlflow(steering))
        inputs[f"sweep__{t}"] = pl.DataFrame([{"band": "none", "alpha": 0.0, **steering["steer_none"]}, {"band": "8-16", "alpha": -1.0, **steering["steer_neg"]}])
        patching = {name: score_retraction(_judged(20 * k + j))[0] for j, name in enumerate(("patch_none", "patch_values_neg"))}
        inputs[f"patching__{t}"] = patching
        log(_prefix("{testbed}.patching_metrics", testbed=t), _mlflow(patching))
    reports = {}
    for m, model in enumerate(("base", "finetuned_geo_city", "finetuned_geo_currency")):
        reports[f"probes__{model}__geo_truthfulness"] = inputs["truthfulness_probes"]
        for k, t in enumerate(TESTBEDS):
            reports[f"retraction__{model}__{t}"] = score_retraction(_judged(100 + 10 * m + k))[0]
            reports[f"prediction__{model}__{t}"] = inputs[f"probes__{t}"]
    inputs["sft_comparison"], metrics = compare_with_base(**reports)
    log(_prefix("{study}.sft_comparison_metrics", study="embedded_study"), metrics)
    params = {f"params_{g}": {"name": "tiny"} if g == "model" else {"steering": {}, "patching": {}} for g in
              ("model", "construction", "evaluation", "probing", "interventions", "sft")}  # fmt: skip
    # its own experiment: an earlier Kedro session in this process leaves another store's experiment active
    with mlflow.start_run(experiment_id=mlflow.create_experiment("report")) as run:
        for prefix, metrics in logged:
            MlflowMetricsHistoryDataset(prefix=prefix).save(metrics)
        outputs = build_study_report("embedded_study", "geo_truthfulness", TESTBEDS, **inputs, **params)
    yield run.info.run_id, outputs, inputs


def test_every_reported_number_equals_the_runs_metric(study):
    import mlflow

    run_id, (page, markdown, numbers, mlflow_page), _ = study
    client = mlflow.MlflowClient()
    logged = client.get_run(run_id).data.metrics
    assert numbers["mlflow_run_id"] == run_id and run_id in page and run_id in markdown and mlflow_page == page
    assert len(numbers["metrics"]) == 58  # 2 x 5 retraction, 2 x 3 x 3 steering, 2 x 2 x 3 patching, 6 x 3 sft
    for key, value in numbers["metrics"].items():
        assert key in logged, key
        assert logged[key] == pytest.approx(value), key
    for key, values in numbers["per_layer"].items():
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx(values), key


def test_pages_hold_every_section_and_figure(study):
    _, (page, markdown, _, _), inputs = study
    for title in ("Continuation datasets", "Baseline retraction", "Belief probes", "Steering", "Patching", "Fine-tuning (LoRA)"):
        assert f"<h2>{title}</h2>" in page and f"## {title}" in markdown
    assert page.count("data:image/png;base64,") == 3  # probes, steering, fine-tuning
    recall = inputs["retraction__geo_city"]["retraction_recall"]
    assert f"<td>{recall:.3f}</td>" in page and f"| {recall:.3f} |" in markdown
    assert "| geo_city | 6 | 3/3 | 4 | 2/2 |" in markdown
