import json

import numpy as np
import pytest

from retraction_kedro.evidence import estimate, flatten, proportion
from retraction_kedro.evidence.schema import as_bools


def test_flatten_names_every_field_after_its_estimate_and_joins_namespaces():
    tree = {"geo_city": {"steer_neg": {"retraction_recall": estimate(0.25, 8, 0.1, 0.6, p_value=0.03)}, "examples": 8}}
    assert flatten(tree) == {
        "geo_city.steer_neg.retraction_recall": 0.25,
        "geo_city.steer_neg.retraction_recall.n": 8,
        "geo_city.steer_neg.retraction_recall.ci_low": 0.1,
        "geo_city.steer_neg.retraction_recall.ci_high": 0.6,
        "geo_city.steer_neg.retraction_recall.p_value": 0.03,
        "geo_city.examples": 8,
    }


def test_undefined_values_are_null_in_json_and_absent_for_mlflow():
    tree = {"retraction_precision": proportion(0, 0)}
    as_json = flatten(tree)
    assert as_json["retraction_precision"] is None and as_json["retraction_precision.ci_low"] is None
    assert json.loads(json.dumps(as_json))["retraction_precision"] is None  # plain Python types, null in JSON
    assert flatten(tree, drop_undefined=True) == {"retraction_precision.n": 0, "retraction_precision.k": 0}


def test_nan_and_numpy_scalars_become_plain_numbers_or_undefined():
    result = estimate(np.float64("nan"), np.int64(3), 0.1, 0.2, skipped=np.int64(2))
    assert result == {"value": None, "n": 3, "ci_low": None, "ci_high": None, "skipped": 2}
    assert type(estimate(np.float32(0.5), 2)["value"]) is float


def test_flatten_refuses_lists_and_strings_by_name():
    with pytest.raises(ValueError, match="probe.accuracy"):
        flatten({"probe": {"accuracy": [0.5, 0.6]}})
    with pytest.raises(ValueError, match="judge"):
        flatten({"judge": "rules"})


def test_labels_with_a_null_or_a_non_binary_value_are_named():
    with pytest.raises(ValueError, match=r"retracted\[2\] is None"):
        as_bools([True, False, None], "retracted")
    with pytest.raises(ValueError, match=r"correct\[1\] is 2"):
        as_bools([1, 2, 0], "correct")
    with pytest.raises(ValueError, match=r"scores\[0, 1\]"):
        as_bools(np.array([[1.0, 0.7]]), "scores")  # 0.7: a probability passed as a label
    assert as_bools([1, 0, True, 1.0], "x").tolist() == [True, False, True, True]
