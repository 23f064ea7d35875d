"""sft nodes without a model: examples in the paper's form, and the before/after table."""

import polars as pl
import pytest

from retraction_kedro.pipelines.model_selection import finetuned_model_spec
from retraction_kedro.pipelines.sft.nodes import build_sft_examples, compare_with_base

TARGETS = {"targets": {"correct": "{name} is the correct answer.", "wrong": "{name} is not the correct answer."}, "balance": False,
           "training": {"seed": 0}}


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


def test_examples_balance_right_and_wrong_answers_when_asked():
    rows = _continuations(("Berlin", True), ("Lyon", False), ("Porto", False), ("Nice", False))
    table = build_sft_examples(rows, {**TARGETS, "balance": True})
    assert sorted(table["result"].to_list()) == [False, True] and "Berlin" in table["name"].to_list()
    assert build_sft_examples(rows, {**TARGETS, "balance": True})["name"].to_list() == table["name"].to_list()  # seeded
    assert build_sft_examples(rows, TARGETS).height == 4


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="continuation train set is empty"):
        build_sft_examples(_continuations().clear(), TARGETS)
    with pytest.raises(ValueError, match=r"^Parameter sft.targets.wrong: must start with \{name\}"):
        build_sft_examples(_continuations(("Berlin", True)), {**TARGETS, "targets": {"correct": "{name} ok", "wrong": "No: {name}"}})
    broken = _continuations(("Berlin", True)).with_columns(name=pl.lit("Munich"))
    with pytest.raises(ValueError, match="row 0: 'messages' must end with the assistant's answer 'Munich'"):
        build_sft_examples(broken, TARGETS)


def test_finetuned_spec_points_at_the_adapter(tmp_path):
    spec = finetuned_model_spec({"name": "some/model", "batch_size": 8}, str(tmp_path / "lora"))
    assert spec["adapter"] == str(tmp_path / "lora" / "adapter") and spec["name"] == "some/model" and spec["batch_size"] == 8
    with pytest.raises(ValueError, match="Unknown key"):
        finetuned_model_spec({"name": "m", "typo": 1}, str(tmp_path))


def _judged(retracted: list[bool]) -> pl.DataFrame:
    n = len(retracted)
    return pl.DataFrame({"name": [f"n{i}" for i in range(n)], "result": [i % 2 == 0 for i in range(n)], "retracted": retracted,
                         "judge_valid": [True] * n, "well_formed": [True] * n})  # fmt: skip


def _probe(value):
    return {"value": value, "n": 10, "ci_low": value - 0.1, "ci_high": value + 0.1, "k": int(10 * value)}


def test_each_model_is_compared_with_the_base_on_the_same_examples():
    inputs = {}
    wrong_retracted = {"base": 0, "finetuned_a": 6, "finetuned_b": 2}  # of the 6 wrong answers (odd rows)
    for model, count in wrong_retracted.items():
        inputs[f"probes__{model}__truth"] = {"best_layer": {"accuracy": _probe(0.7), "layer": 3}}
        for testbed in ("a", "b"):
            inputs[f"judged__{model}__{testbed}"] = _judged([i % 2 == 1 and i // 2 < count for i in range(12)])
            inputs[f"prediction__{model}__{testbed}"] = {"best_layer_for_retraction_prediction": {"retraction_prediction_accuracy": _probe(0.8), "layer": 2}}
    table, metrics = compare_with_base({"a": "truth", "b": "truth"}, {"seed": 0, "resamples": 200}, **inputs)
    assert [(r["model"], r["evaluated_on"], r["distribution"]) for r in table] == [
        ("base", "a", "base"), ("base", "b", "base"),
        ("finetuned_a", "a", "in"), ("finetuned_a", "b", "out"),
        ("finetuned_b", "a", "out"), ("finetuned_b", "b", "in"),
    ]  # fmt: skip
    change = table[3]["change"]["retraction_recall"]
    assert table[3]["retraction_recall"]["value"] == 1.0 and change["value"] == 1.0 and change["treatment_only"] == 6
    assert change["p_value"] == pytest.approx(2 * 0.5**6)  # exact McNemar: 6 discordant pairs, all one way
    assert "change" not in table[0]  # the base model is the reference
    assert metrics["finetuned_b.a.retraction_recall"] == {"value": pytest.approx(2 / 6), "step": 0}
    assert metrics["finetuned_b.a.change.retraction_recall.p_value"]["value"] == pytest.approx(0.5)
    assert metrics["base.a.probe_truthfulness_accuracy"]["value"] == 0.7
    with pytest.raises(ValueError, match="same examples in the same order"):
        compare_with_base({"a": "truth", "b": "truth"}, {"seed": 0}, **{**inputs, "judged__finetuned_a__a": inputs["judged__base__a"].reverse()})
