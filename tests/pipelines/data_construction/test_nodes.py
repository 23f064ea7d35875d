"""The construction recipe on hand-written fixtures in the paper's schema (invented content)."""

import polars as pl
import pytest

from retraction_kedro.pipelines.data_construction import nodes
from retraction_kedro.pipelines.data_construction.nodes import ConstructionError, build_continuation_sets

SYSTEM = {"role": "system", "content": "Answer with a name."}
TESTBED = {
    "min_name_words": 2,
    "max_name_words": 6,
    "verification": {
        "system": "Reply with the name only.", "template": "Who is {name}'s {parent_type}?",
        "expected_field": "parent_name", "alias_field": None, "response_field": "parent_response", "shots": 1,
    },
}  # fmt: skip
CONSTRUCTION = {"seed": 0, "max_answers_per_question": 2, "balance_train": True}


def question(parent, children):
    text = f"Name a child of {parent}."
    return {"parent_type": "mother", "parent_name": parent, "question": text, "answers": children,
            "messages": [SYSTEM, {"role": "user", "content": text}]}  # fmt: skip


TRAIN = pl.DataFrame([question("Alice Example", ["Bob Example"]), question("Carol Sample", ["Dan Sample", "Eve Sample"])])
TEST = pl.DataFrame([question("Fay Test", ["Gus Test"])])


def verified_row(split, index, name, result, kept):
    return {"split": split, "index": index, "name": name, "result": result, "kept": kept, "times_sampled": 1,
            "verification_question": "?", "verification_response": "Someone", "confirmed": result == kept}  # fmt: skip


def samples_for(verified):
    return pl.DataFrame([
        {"split": v["split"], "index": v["index"], "sample_seed": 0, "response": v["name"], "name": v["name"],
         "status": "ok", "result": v["result"]} for v in verified
    ] + [{"split": "train", "index": 0, "sample_seed": 1, "response": "I don't know", "name": None, "status": "idk", "result": False}])  # fmt: skip


def test_builds_balanced_sets_in_the_paper_schema():
    verified = [
        verified_row("train", 0, "Bob Example", True, True),
        verified_row("train", 0, "Zed Wrong", False, True),
        verified_row("train", 1, "Dan Sample", True, True),
        verified_row("train", 1, "Eve Sample", True, True),
        verified_row("train", 1, "Yan Wrong", False, True),  # third answer of question 1: over the cap
        verified_row("train", 1, "Xi Unverified", False, False),  # the model did not contradict it: dropped
        verified_row("test", 0, "Gus Test", True, True),
        verified_row("test", 0, "Wu Wrong", False, True),
        verified_row("test", 0, "Vi Wrong", False, True),
    ]
    train, val, test, summary, metrics = build_continuation_sets(
        samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION
    )
    assert train.height == 2 and test.height == 2 and val.height == 0
    assert sorted(train["result"].to_list()) == [False, True] == sorted(test["result"].to_list())
    row = test.filter(pl.col("result")).to_dicts()[0]
    assert set(row) >= {"parent_type", "parent_name", "question", "messages", "name", "result", "index", "parent_response"}
    assert "answers" not in row
    assert row["messages"][-1] == {"role": "assistant", "content": "Gus Test"}
    assert row["messages"][:2] == [SYSTEM, {"role": "user", "content": "Name a child of Fay Test."}]
    counts = summary["counts"]
    assert counts["idk"] == 1 and counts["questions"] == 3 and counts["test_kept_wrong"] == 1
    assert metrics["idk"] == {"value": 1.0, "step": 0}


def test_an_empty_class_fails_with_the_stage_counts():
    verified = [verified_row("train", 0, "Bob Example", True, True), verified_row("test", 0, "Gus Test", True, True)]
    with pytest.raises(ConstructionError, match=r"no train correct, no train wrong, no test correct, no test wrong answers; per-stage counts: .*'questions': 2"):
        build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION)


def test_verification_shots_come_from_the_testbeds_own_questions():
    shots = nodes.verification_shots(TRAIN, TESTBED, CONSTRUCTION)
    assert shots[0]["role"] == "system" and len(shots) == 3
    assert shots[1]["content"] in {"Who is Bob Example's mother?", "Who is Dan Sample's mother?"}
    assert shots[2]["content"] in {"Alice Example", "Carol Sample"}


def test_sampling_and_verification_run_batched_on_a_tiny_model(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    construction = {**CONSTRUCTION, "sample_seeds": [0, 1], "temperature": 0.7, "top_p": 0.95,
                    "answer_max_new_tokens": 6, "verification_max_new_tokens": 6, "val_fraction": 0.5}  # fmt: skip
    runtime = {"resume_dir": None, "show_progress": False}
    samples = nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, {"batch_size": 2}, runtime)
    assert samples.height == 2 * 3
    assert set(samples["split"].to_list()) == {"train", "val", "test"}
    assert set(samples["status"].to_list()) <= {"ok", "idk", "invalid"}
    again = nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, {"batch_size": 3}, runtime)
    assert samples["response"].to_list() == nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, {"batch_size": 2}, runtime)["response"].to_list()
    assert again.height == samples.height
    forced = samples.with_columns(pl.lit("ok").alias("status"), pl.lit("Bob Example").alias("name"))
    shots = nodes.verification_shots(TRAIN, TESTBED, CONSTRUCTION)
    verified = nodes.verify_answers(forced, TRAIN, TEST, shots, TESTBED, construction, {"batch_size": 2}, runtime)
    assert verified.height == 3  # one distinct (question, name) per question
    assert set(verified.columns) >= {"verification_question", "verification_response", "confirmed", "kept"}
    assert verified["verification_question"].to_list()[0] == "Who is Bob Example's mother?"


def test_llm_extractor_runs_batched_and_its_output_is_validated(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    construction = {**CONSTRUCTION, "sample_seeds": [0], "temperature": 0.7, "top_p": 0.95, "answer_max_new_tokens": 6,
                    "val_fraction": 0.0, "extractor": "llm", "llm_extractor": {"model": None, "max_new_tokens": 4}}  # fmt: skip
    samples = nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, {"batch_size": 2}, {"resume_dir": None, "show_progress": False})
    assert samples.height == 3 and set(samples["status"].to_list()) <= {"ok", "idk", "invalid"}
    with pytest.raises(ValueError, match="construction.extractor"):
        nodes.sample_answers(TRAIN, TEST, {}, TESTBED, {**construction, "extractor": "regex"}, {"batch_size": 2}, {})


def test_reading_an_extraction():
    from retraction_kedro.pipelines.data_construction.answers import read_extraction

    assert read_extraction("Nairobi", "One city in Kenya is Nairobi.") == ("Nairobi", "ok")
    assert read_extraction("NONE", "Cities are nice.") == (None, "invalid")
    assert read_extraction("Paris", "I don't know.") == (None, "idk")
