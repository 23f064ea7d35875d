import polars as pl
import pytest
import torch

from retraction_kedro.config import ParameterError
from retraction_kedro.pipelines.probing import nodes

from ...probes.test_training import planted

PROBING = {
    "trainer": "batched", "seed": 0, "batch_size": 64, "standardize": True, "select_epoch_on": "validation",
    "validation_fraction": 0.2, "sklearn_c": [0.01, 1.0],
    "schedules": [{"from_layer": 0.0, "lr": 1e-3, "weight_decay": 1e-3, "epochs": 10}],
}  # fmt: skip
EVIDENCE = {"seed": 0, "resamples": 200}


def split():
    x, y = planted(n=300)
    index = lambda part: pl.DataFrame({"row": list(range(len(part))), "label": part.tolist()})  # noqa: E731
    return {"hidden": x[:200]}, index(y[:200]), {"hidden": x[200:]}, index(y[200:])


@pytest.mark.parametrize("trainer, select_on", [("batched", "validation"), ("batched", "test"), ("sklearn", "validation")])
def test_probes_train_and_evaluate_end_to_end(trainer, select_on):
    hidden_train, index_train, hidden_test, index_test = split()
    probes, history = nodes.train_belief_probes(hidden_train, index_train, hidden_test, index_test, {**PROBING, "trainer": trainer, "select_epoch_on": select_on})
    metrics = nodes.evaluate_on_truthfulness(probes, hidden_test, index_test, EVIDENCE)
    assert metrics["layer"].to_list() == list(range(6))
    accuracy = [row["accuracy"] for row in metrics.iter_rows(named=True)]
    assert max(range(6), key=lambda layer: accuracy[layer]["value"]) == 3 and accuracy[3]["n"] == 100
    assert accuracy[3]["ci_low"] < accuracy[3]["value"] < accuracy[3]["ci_high"]
    auroc = [row["auroc"]["value"] for row in metrics.iter_rows(named=True)]
    assert auroc[3] > 0.85 and max(auroc[:3] + auroc[4:]) < 0.65  # only layer 3 holds the planted direction
    summary, by_layer = nodes.summarize_truthfulness(metrics)
    assert summary["best_layer"]["layer"] == 3
    assert by_layer["accuracy"][3] == {"value": pytest.approx(accuracy[3]["value"]), "step": 3}
    assert by_layer["auroc.ci_low"][3]["step"] == 3 and by_layer["accuracy.n"][0]["value"] == 100
    assert (trainer == "batched") == ("probe_train_loss" in history)

    judged = pl.DataFrame({"index": list(range(100)), "name": ["n"] * 100, "result": [bool(v) for v in index_test["label"]],
                           "retracted": [not v for v in index_test["label"]]})  # fmt: skip
    testbed_metrics, scores = nodes.evaluate_on_testbed(probes, hidden_test, judged, EVIDENCE)
    assert scores.height == 100 and "probe_correct_probability" in scores.columns
    row = testbed_metrics.row(3, named=True)
    # retracted exactly when wrong: predicting retraction is predicting "wrong"
    assert row["retraction_prediction_accuracy"]["value"] == pytest.approx(row["correctness_accuracy"]["value"])
    assert row["retraction_auroc"]["value"] == pytest.approx(row["correctness_auroc"]["value"])
    assert row["accuracy_wrong_not_retracted"] == {"value": None, "n": 0, "ci_low": None, "ci_high": None, "k": 0}  # no such example
    wrong = sum(1 for v in index_test["label"] if not v)
    assert row["accuracy_wrong_retracted"]["n"] == wrong
    believed_wrong = [p[3] <= 0.5 for p in scores["probe_correct_probability"].to_list()]
    hits = sum(b and r for b, r in zip(believed_wrong, judged["retracted"]))
    assert row["believed_wrong_precision"]["n"] == sum(believed_wrong) and row["believed_wrong_precision"]["k"] == hits
    _, _, figure, mlflow_copy = nodes.summarize_testbed(testbed_metrics, metrics, "geo_city")
    assert mlflow_copy is figure
    assert len(figure.data) == 3


def test_tables_and_tensors_from_different_runs_fail_clearly():
    hidden_train, index_train, hidden_test, index_test = split()
    with pytest.raises(ValueError, match=r"truthfulness train: hidden states \(200, 6, 24\) do not match the table's 350 rows.*--load-versions"):
        nodes.train_belief_probes(hidden_train, pl.concat([index_train, index_train.head(-50)]), hidden_test, index_test, PROBING)
    with pytest.raises(ValueError, match="no 'hidden' entry"):
        nodes.evaluate_on_truthfulness({}, {"values": torch.zeros(1)}, index_test, EVIDENCE)
    with pytest.raises(ParameterError, match="probing.select_epoch_on"):
        nodes.train_belief_probes(hidden_train, index_train, hidden_test, index_test, {**PROBING, "select_epoch_on": "train"})


def test_truthfulness_table_reports_undefined_as_undefined_and_matches_scikit_learn():
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    hidden_train, index_train, hidden_test, index_test = split()
    probes, _ = nodes.train_belief_probes(hidden_train, index_train, hidden_test, index_test, PROBING)
    positives = [i for i, label in enumerate(index_test["label"]) if label == 1]
    one_class = index_test[positives]
    metrics = nodes.evaluate_on_truthfulness(probes, {"hidden": hidden_test["hidden"][positives]}, one_class, EVIDENCE)
    predicted = (nodes.predict(probes, hidden_test["hidden"][positives]) > 0.5).numpy()
    for layer, row in enumerate(metrics.iter_rows(named=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score([1] * len(positives), predicted[:, layer])
        assert row["balanced_accuracy"]["value"] == pytest.approx(expected) == pytest.approx(row["accuracy"]["value"])
        assert row["balanced_accuracy"]["positives"] == row["balanced_accuracy"]["n"] == len(positives)
        assert row["auroc"]["value"] is None  # the same data: AUROC undefined
    empty = nodes.evaluate_on_truthfulness(probes, {"hidden": hidden_test["hidden"][:0]}, index_test.head(0), EVIDENCE)
    assert {row["balanced_accuracy"]["value"] for row in empty.iter_rows(named=True)} == {None}  # was 0.0
    summary, by_layer = nodes.summarize_truthfulness(empty)
    assert "balanced_accuracy" not in by_layer and by_layer["balanced_accuracy.n"][0] == {"value": 0.0, "step": 0}
    assert summary["layers"][0]["balanced_accuracy"]["value"] is None  # null in JSON


def test_a_validation_split_too_small_to_hold_anything_out_fails_naming_the_parameter():
    hidden_train, index_train, hidden_test, index_test = split()
    few = {"hidden": hidden_train["hidden"][:3]}
    with pytest.raises(ValueError, match=r"^Parameter probing.validation_fraction: 0.2 of 3 truthfulness training examples holds none out"):
        nodes.train_belief_probes(few, index_train.head(3), hidden_test, index_test, PROBING)
