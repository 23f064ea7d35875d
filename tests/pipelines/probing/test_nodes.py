import polars as pl
import pytest
import torch

from retraction_kedro.pipelines.probing import nodes

from ...probes.test_training import planted

PROBING = {
    "trainer": "batched", "seed": 0, "batch_size": 64, "standardize": True, "select_epoch_on": "validation",
    "validation_fraction": 0.2, "sklearn_c": [0.01, 1.0],
    "schedules": [{"from_layer": 0.0, "lr": 1e-3, "weight_decay": 1e-3, "epochs": 10}],
}  # fmt: skip


def split():
    x, y = planted(n=300)
    index = lambda part: pl.DataFrame({"row": list(range(len(part))), "label": part.tolist()})  # noqa: E731
    return {"hidden": x[:200]}, index(y[:200]), {"hidden": x[200:]}, index(y[200:])


@pytest.mark.parametrize("trainer, select_on", [("batched", "validation"), ("batched", "test"), ("sklearn", "validation")])
def test_probes_train_and_evaluate_end_to_end(trainer, select_on):
    hidden_train, index_train, hidden_test, index_test = split()
    probes, history = nodes.train_belief_probes(hidden_train, index_train, hidden_test, index_test, {**PROBING, "trainer": trainer, "select_epoch_on": select_on})
    metrics = nodes.evaluate_on_truthfulness(probes, hidden_test, index_test)
    assert metrics["layer"].to_list() == list(range(6))
    assert int(metrics["accuracy"].arg_max()) == 3
    summary, by_layer = nodes.summarize_truthfulness(metrics)
    assert summary["best_layer"]["layer"] == 3
    assert by_layer["accuracy"][3] == {"value": pytest.approx(metrics["accuracy"][3]), "step": 3}
    assert (trainer == "batched") == ("probe_train_loss" in history)

    judged = pl.DataFrame({"index": list(range(100)), "name": ["n"] * 100, "result": [bool(v) for v in index_test["label"]],
                           "retracted": [not v for v in index_test["label"]]})  # fmt: skip
    testbed_metrics, scores = nodes.evaluate_on_testbed(probes, hidden_test, judged)
    assert scores.height == 100 and "probe_correct_probability" in scores.columns
    assert testbed_metrics["retraction_prediction_accuracy"][3] == pytest.approx(testbed_metrics["correctness_accuracy"][3])
    _, _, figure, mlflow_copy = nodes.summarize_testbed(testbed_metrics, metrics, "geo_city")
    assert mlflow_copy is figure
    assert len(figure.data) == 3


def test_tables_and_tensors_from_different_runs_fail_clearly():
    hidden_train, index_train, hidden_test, index_test = split()
    with pytest.raises(ValueError, match=r"truthfulness train: hidden states \(200, 6, 24\) do not match the table's 350 rows.*--load-versions"):
        nodes.train_belief_probes(hidden_train, pl.concat([index_train, index_train.head(-50)]), hidden_test, index_test, PROBING)
    with pytest.raises(ValueError, match="no 'hidden' entry"):
        nodes.evaluate_on_truthfulness({}, {"values": torch.zeros(1)}, index_test)
    with pytest.raises(ValueError, match="select_epoch_on"):
        nodes.train_belief_probes(hidden_train, index_train, hidden_test, index_test, {**PROBING, "select_epoch_on": "train"})
