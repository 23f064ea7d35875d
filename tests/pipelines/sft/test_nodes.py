"""sft nodes without a model: examples in the paper's form, and the before/after table."""

import polars as pl
import pytest

from retraction_kedro.pipelines.model_selection import finetuned_model_spec
from retraction_kedro.pipelines.sft.nodes import build_sft_examples, compare_with_base

TARGETS = {"targets": {"correct": "{name} is the correct answer.", "wrong": "{name} is not the correct answer."}}


def _continuations(*rows):
    return pl.DataFrame(
        [
            {"index": i, "question": "Name a city in Germany.", "name": name, "result": result,
             "messages": [{"role": "user", "content": "Name a city in Germany."}, {"role": "assistant", "content": name}]}
            for i, (name, result) in enumerate(rows)
        ]
    )  # fmt: skip


def test_examples_complete_the_answer_by_correctness():
    table = build_sft_examples(_continuations(("Berlin", True), ("Lyon", False)), TARGETS)
    assert table["target"].to_list() == ["Berlin is the correct answer.", "Lyon is not the correct answer."]
    assert table["completion"].to_list() == [" is the correct answer.", " is not the correct answer."]
    assert table["messages"].to_list()[1][-1] == {"role": "assistant", "content": "Lyon"}


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="continuation train set is empty"):
        build_sft_examples(_continuations().clear(), TARGETS)
    with pytest.raises(ValueError, match=r"sft.targets.wrong must start with '\{name\}'"):
        build_sft_examples(_continuations(("Berlin", True)), {"targets": {"correct": "{name} ok", "wrong": "No: {name}"}})
    broken = _continuations(("Berlin", True)).with_columns(name=pl.lit("Munich"))
    with pytest.raises(ValueError, match="row 0: 'messages' must end with the assistant's answer 'Munich'"):
        build_sft_examples(broken, TARGETS)


def test_finetuned_spec_points_at_the_adapter(tmp_path):
    spec = finetuned_model_spec({"name": "some/model", "batch_size": 8}, str(tmp_path / "lora"))
    assert spec == {"name": "some/model", "batch_size": 8, "adapter": str(tmp_path / "lora" / "adapter")}
    with pytest.raises(ValueError, match="Unknown key"):
        finetuned_model_spec({"name": "m", "typo": 1}, str(tmp_path))


def _retraction(recall):
    return {"answer_accuracy": 0.5, "retraction_recall": recall, "retraction_precision": 1.0, "retraction_rate": recall / 2}


def _prediction(accuracy, layer):
    return {"best_layer_for_retraction_prediction": {"retraction_prediction_accuracy": accuracy, "layer": layer}}


def test_comparison_rows_say_in_or_out_of_distribution():
    reports = {}
    for model, recall in (("base", 0.1), ("finetuned_a", 0.6), ("finetuned_b", 0.3)):
        reports[f"probes__{model}__truth"] = {"best_layer": {"accuracy": 0.7, "layer": 3}}
        for testbed in ("a", "b"):
            reports[f"retraction__{model}__{testbed}"] = _retraction(recall)
            reports[f"prediction__{model}__{testbed}"] = _prediction(0.8, 2)
    table, metrics = compare_with_base(**reports)
    assert [(r["model"], r["evaluated_on"], r["distribution"]) for r in table] == [
        ("base", "a", "base"), ("base", "b", "base"),
        ("finetuned_a", "a", "in"), ("finetuned_a", "b", "out"),
        ("finetuned_b", "a", "out"), ("finetuned_b", "b", "in"),
    ]  # fmt: skip
    assert table[3]["retraction_recall"] == 0.6 and table[3]["trained_on"] == "a"
    assert metrics["finetuned_b.a.retraction_recall"] == {"value": 0.3, "step": 0}
    assert metrics["base.a.probe_truthfulness_accuracy"]["value"] == 0.7
