"""The batched metric-history dataset writes what kedro-mlflow's own dataset writes, in one call."""

from unittest import mock

import mlflow
import pytest
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from mlflow.tracking import MlflowClient

from retraction_kedro.datasets import MlflowMetricsHistoryBatchDataset

DATA = {
    "probe.accuracy": [{"value": 0.5 + layer / 100, "step": layer} for layer in range(30)],
    "retraction_recall": {"value": 0.25, "step": 0},
    "retraction_recall.n": {"value": 12.0, "step": 0},
}


def histories(run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient()
    keys = client.get_run(run_id).data.metrics
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


@pytest.fixture
def tracking(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("metrics")  # an experiment of this database (an earlier test may have set another's)
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_the_same_keys_steps_and_values_as_kedro_mlflow_in_one_batch(tracking):
    with mlflow.start_run() as reference:
        MlflowMetricsHistoryDataset(prefix="geo_city").save(DATA)
    with mlflow.start_run() as batched:
        with mock.patch.object(MlflowClient, "log_metric") as one_by_one, mock.patch.object(
            MlflowClient, "log_batch", autospec=True, side_effect=MlflowClient.log_batch
        ) as batch:
            MlflowMetricsHistoryBatchDataset(prefix="geo_city").save(DATA)
    one_by_one.assert_not_called()
    assert batch.call_count == 1
    expected = histories(reference.info.run_id)
    assert len(expected["geo_city.probe.accuracy"]) == 30 and "geo_city.retraction_recall.n" in expected
    assert histories(batched.info.run_id) == expected
    loaded = MlflowMetricsHistoryBatchDataset(prefix="geo_city", run_id=batched.info.run_id).load()
    assert loaded["geo_city.probe.accuracy"][3] == {"value": 0.53, "step": 3}  # loads as kedro-mlflow's does


def test_logging_switched_off_writes_nothing(tracking):
    with mlflow.start_run() as run:
        dataset = MlflowMetricsHistoryBatchDataset(prefix="geo_city")
        dataset._logging_activated = False  # kedro-mlflow's switch for runs that must not log
        dataset.save(DATA)
    assert histories(run.info.run_id) == {}
