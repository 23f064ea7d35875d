"""The construction recipe on hand-written fixtures in the paper's schema (invented content)."""

import polars as pl
import pytest

from retraction_kedro.config import ParameterError
from retraction_kedro.pipelines import chat_models
from retraction_kedro.pipelines.data_construction import nodes
from tests.serving.conftest import scripted_server  # noqa: F401 (a fixture)
from retraction_kedro.pipelines.data_construction.answers import REJECTIONS
from retraction_kedro.pipelines.data_construction.nodes import ConstructionError, build_continuation_sets
from tests.conftest import model_params, make_testbed

SYSTEM = {"role": "system", "content": "Answer with a name."}
TESTBED = make_testbed(
    constraint_field="parent_name", min_name_words=2, max_name_words=6,
    verification={"template": "Who is {name}'s {parent_type}?", "response_field": "parent_response", "shots": 1},
)  # fmt: skip
BALANCED = {split: {"balance": True} for split in ("train", "val", "test")}
CONSTRUCTION = {"seed": 0, "max_answers_per_question": 2, "splits": BALANCED, "sample_seeds": [0]}
RUNTIME = {"resume_dir": None, "show_progress": False}


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


def test_val_and_test_sets_keep_every_wrong_answer_up_to_their_cap():
    verified = [verified_row("train", 0, "Bob Example", True, True), verified_row("train", 0, "Zed Wrong", False, True),
                verified_row("test", 0, "Gus Test", True, True)]  # fmt: skip
    verified += [verified_row("test", 0, f"Wrong {chr(65 + i)}", False, True) for i in range(5)]
    recipe = {**CONSTRUCTION, "max_answers_per_question": 10}
    capped = {**BALANCED, "test": {"balance": False, "max_wrong": 3}}
    _, _, test, summary, _ = build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, {**recipe, "splits": capped})
    assert sorted(test["result"].to_list()) == [False, False, False, True]  # all correct ones, three of five wrong
    assert summary["counts"]["test_kept_wrong"] == 3 and summary["counts"]["test_kept_correct"] == 1
    again = build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, {**recipe, "splits": capped})[2]
    assert again["name"].to_list() == test["name"].to_list()  # the seed decides which three
    _, _, balanced, _, _ = build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, recipe)
    assert sorted(balanced["result"].to_list()) == [False, True]
    with pytest.raises(ParameterError, match=r"construction.splits.test: Value error, a balanced split takes no caps|construction.splits.test: a balanced split takes no caps"):
        build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED,
                                {**recipe, "splits": {**BALANCED, "test": {"balance": True, "max_wrong": 3}}})  # fmt: skip


def test_an_empty_class_fails_with_the_stage_counts():
    verified = [verified_row("train", 0, "Bob Example", True, True), verified_row("test", 0, "Gus Test", True, True)]
    with pytest.raises(ConstructionError, match=r"no train correct, no train wrong, no test correct, no test wrong answers \(.*\); per-stage counts: .*'questions': 2"):
        build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION)


def test_the_stop_names_the_stage_that_emptied_each_class():
    # train: wrong answers sampled but none contradicted; test: no wrong answer sampled at all
    verified = [verified_row("train", 0, "Bob Example", True, True), verified_row("train", 0, "Zed Wrong", False, False),
                verified_row("train", 1, "Yan Wrong", False, False), verified_row("test", 0, "Gus Test", True, True)]  # fmt: skip
    unbalanced = {**CONSTRUCTION, "splits": {split: {"balance": False} for split in ("train", "val", "test")}}
    with pytest.raises(ConstructionError) as error:
        build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, unbalanced)
    message = str(error.value)
    assert message.startswith("Testbed construction left no train wrong, no test wrong answers (")
    assert "train wrong: 0 of 2 distinct wrong answers contradicted at verification" in message
    assert "test wrong: none among 1 sampled answers" in message and "per-stage counts" in message


def test_verification_shots_come_from_the_testbeds_own_questions():
    shots = nodes.question_file_shots(TRAIN, {}, TESTBED, CONSTRUCTION)
    assert shots[0]["role"] == "system" and len(shots) == 3
    assert shots[1]["content"] in {"Who is Bob Example's mother?", "Who is Dan Sample's mother?"}
    assert shots[2]["content"] in {"Alice Example", "Carol Sample"}
    more = nodes.question_file_shots(TRAIN, {}, make_testbed(**{**TESTBED, "verification": {**TESTBED["verification"], "shots": 2}}), CONSTRUCTION)
    assert len(more) == 5  # verification.shots decides how many worked examples


def test_embedded_questions_honour_the_number_of_shots():
    world = {"seed": 0, "min_city_population": 100000, "min_answers": 3, "test_fraction": 0.5, "truthfulness_per_relation": 40,
             "truthfulness_relations": ["capital"]}  # fmt: skip
    testbed = make_testbed(source={"embedded": "city_in_country"}, verification={"shots": 3})
    train, test, shots, manifest = nodes.build_embedded_questions(world, testbed)
    assert [m["role"] for m in shots] == ["system"] + ["user", "assistant"] * 3
    assert all(m["content"].startswith("Which country is ") for m in shots[1::2])
    assert manifest["rows"] == {"train": train.height, "test": test.height} and min(train.height, test.height) > 10
    assert set(train["country"]).isdisjoint(test["country"])


def test_question_files_of_ones_own_are_checked_row_by_row():
    bad = TRAIN.with_columns(pl.Series("answers", [["Bob Example"], []]))
    with pytest.raises(ValueError, match=r"^train.jsonl, row 2: field 'answers' must be a non-empty list of names"):
        nodes.describe_question_files(bad, TEST, TESTBED)
    empty_constraint = TEST.with_columns(pl.lit("").alias("parent_name").cast(pl.String).replace("", None))
    with pytest.raises(ValueError, match=r"^test.jsonl, row 1: field 'parent_name' \(the testbed's constraint_field\) is empty"):
        nodes.describe_question_files(TRAIN, empty_constraint, TESTBED)
    assert nodes.describe_question_files(TRAIN, TEST, TESTBED)["rows"] == {"train": 2, "test": 1}


def test_sampling_does_not_depend_on_the_batch_size_and_verification_asks_each_answer_once(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    construction = {**CONSTRUCTION, "sample_seeds": [0, 1], "temperature": 0.7, "top_p": 0.95,
                    "answer_max_new_tokens": 6, "verification_max_new_tokens": 6, "val_fraction": 0.5}  # fmt: skip
    by_batch = {size: nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, model_params(size), RUNTIME) for size in (1, 2, 3)}
    samples = by_batch[2]
    assert samples.height == 2 * 3
    assert samples.group_by("split").len().sort("split").rows() == [("test", 2), ("train", 2), ("val", 2)]
    for size in (1, 3):  # each example's random stream comes from the seed and the example, not from its batch
        assert by_batch[size]["response"].to_list() == samples["response"].to_list(), size
    assert samples.filter(pl.col("sample_seed") == 0)["response"].to_list() != samples.filter(pl.col("sample_seed") == 1)["response"].to_list()
    forced = samples.with_columns(pl.lit("ok").alias("status"), pl.lit("Bob Example").alias("name"))
    shots = nodes.question_file_shots(TRAIN, {}, TESTBED, CONSTRUCTION)
    verified = nodes.verify_answers(forced, TRAIN, TEST, shots, TESTBED, construction, model_params(2), RUNTIME)
    assert verified.height == 3  # one distinct (question, name) per question
    assert verified["times_sampled"].to_list() == [2, 2, 2]
    assert verified["verification_question"].to_list() == ["Who is Bob Example's mother?"] * 3


def test_local_extractor_output_is_read_by_the_same_rules(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    monkeypatch.setattr(chat_models, "load_language_model", lambda params: tiny_lm)
    monkeypatch.setattr(chat_models, "generate_texts", lambda lm, prompts, *a, **k: ["Bob Example" for _ in prompts])
    construction = {**CONSTRUCTION, "sample_seeds": [0], "answer_max_new_tokens": 6, "val_fraction": 0.0, "extractor": "local",
                    "llm_extractor": {"model": None, "max_new_tokens": 4}}  # fmt: skip
    samples = nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, model_params(2), RUNTIME)
    assert samples["name"].to_list() == ["Bob Example"] * 3 and samples["status"].to_list() == ["ok"] * 3
    assert samples["result"].to_list() == [True, False, False]  # Bob is a child of the first question's parent only
    with pytest.raises(ParameterError, match=r"^Parameter construction.extractor: Input should be 'rules', 'local' or 'server' \(got 'regex'\)$"):
        nodes.sample_answers(TRAIN, TEST, {}, TESTBED, {**construction, "extractor": "regex"}, model_params(2), RUNTIME)


def test_server_extractor_marks_failed_replies_invalid(tiny_lm, monkeypatch, scripted_server):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    scripted_server.script = [200, 400, 200]  # replies echo "echo: Question: ...": not a name
    server = {"base_url": scripted_server.base_url, "model": scripted_server.model, "max_retries": 0, "concurrency": 1}
    construction = {**CONSTRUCTION, "sample_seeds": [0], "answer_max_new_tokens": 6, "val_fraction": 0.0, "extractor": "server",
                    "llm_extractor": {"max_new_tokens": 4, "server": server}}  # fmt: skip
    samples = nodes.sample_answers(TRAIN, TEST, {}, TESTBED, construction, model_params(2), RUNTIME)
    assert len(scripted_server.chat_requests()) == 3
    assert set(samples["status"].to_list()) <= {"invalid", "idk"} and samples["name"].null_count() == 3


def test_reading_an_extraction():
    from retraction_kedro.pipelines.data_construction.answers import read_extraction

    assert read_extraction("Nairobi", "One city in Kenya is Nairobi.") == ("Nairobi", "ok")
    assert read_extraction("NONE", "Cities are nice.") == (None, "invalid")
    assert read_extraction("Paris", "I don't know.") == (None, "idk")


def test_an_empty_class_in_val_is_a_warning_with_its_counts_never_silent(caplog):
    # val kept right answers only (the researcher's testbed kept 0 wrong ones there, and nothing said so)
    verified = [verified_row(split, 0, name, result, True) for split, name, result in
                (("train", "Bob Example", True), ("train", "Zed Wrong", False), ("test", "Gus Test", True), ("test", "Wu Wrong", False),
                 ("val", "Eve Sample", True))]  # fmt: skip
    verified.append(verified_row("val", 1, "Yan Wrong", False, False))  # sampled, but the model confirmed it
    recipe = {**CONSTRUCTION, "val_fraction": 0.3}
    with caplog.at_level("WARNING", logger=nodes.__name__):
        _, val, _, summary, metrics = build_continuation_sets(samples_for(verified), pl.DataFrame(verified), TRAIN, TEST, TESTBED, recipe)
    assert val.height == 0  # balanced: no wrong answer, so no right one either
    expected = "continuation_val keeps no correct answer (1 confirmed, none selected by construction.splits.val;"
    assert summary["warnings"][0].startswith(expected) and "no wrong answer (0 of 1 distinct wrong answers contradicted" in summary["warnings"][1]
    assert [r.getMessage() for r in caplog.records] == summary["warnings"]
    assert summary["by_split"]["val"] == {"questions": 2, "samples": 2, "answers_correct": 1, "answers_wrong": 1, "distinct_correct": 1,
                                          "distinct_wrong": 1, "confirmed_correct": 1, "contradicted_wrong": 0, "kept_correct": 0, "kept_wrong": 0}  # fmt: skip
    assert metrics["by_split.val.contradicted_wrong"] == {"value": 0.0, "step": 0} and metrics["val_kept_wrong"]["value"] == 0.0
    without_val = [v for v in verified if v["split"] != "val"]
    caplog.clear()
    with caplog.at_level("WARNING", logger=nodes.__name__):  # val_fraction 0: no val was asked for
        summary = build_continuation_sets(samples_for(without_val), pl.DataFrame(without_val), TRAIN, TEST, TESTBED,
                                          {**CONSTRUCTION, "val_fraction": 0.0})[3]  # fmt: skip
    assert summary["warnings"] == [] and not caplog.records
    with caplog.at_level("WARNING", logger=nodes.__name__):  # asked for, but there was none
        summary = build_continuation_sets(samples_for(without_val), pl.DataFrame(without_val), TRAIN, TEST, TESTBED, recipe)[3]
    assert summary["warnings"][0].startswith("continuation_val keeps no correct answer (the split has no question")


def test_the_summary_counts_each_rejection_rule_and_undefined_accuracy_is_null():
    verified = [verified_row(split, 0, name, result, True) for split, name, result in
                (("train", "Bob Example", True), ("train", "Zed Wrong", False), ("test", "Gus Test", True), ("test", "Wu Wrong", False))]  # fmt: skip
    samples = samples_for(verified).with_columns(pl.lit(None, dtype=pl.String).alias("reason"))
    samples = samples.with_columns(pl.when(pl.col("status") == "idk").then(pl.lit("idk")).otherwise(pl.col("reason")).alias("reason"))
    rejected = pl.DataFrame([{"split": "train", "index": 1, "sample_seed": s, "response": r, "name": None, "status": "invalid", "result": False,
                              "reason": reason} for s, (r, reason) in enumerate([("Kenya.", "constraint_value"), ("A B C D E F G", "too_many_words"),
                                                                                  ("Texas", "constraint_value")])])  # fmt: skip
    _, _, _, summary, metrics = build_continuation_sets(pl.concat([samples, rejected]), pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION)
    assert summary["rejected"] == {reason: {"idk": 1, "constraint_value": 2, "too_many_words": 1}.get(reason, 0) for reason in REJECTIONS}
    assert metrics["rejected.constraint_value"] == {"value": 2.0, "step": 0} and metrics["rejected.kind_word"]["value"] == 0.0
    assert summary["counts"]["invalid"] == 3 and summary["free_answer_accuracy"] == 0.5
    nothing_usable = samples.with_columns(pl.lit("invalid").alias("status"), pl.lit("empty").alias("reason"))
    summary, metrics = build_continuation_sets(nothing_usable, pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION)[3:]
    assert summary["free_answer_accuracy"] is None and "free_answer_accuracy" not in metrics  # was 0.0
    with pytest.raises(ValueError, match=r"answer_samples: field 'reason' holds 'typo'"):
        build_continuation_sets(samples.with_columns(pl.lit("typo").alias("reason")), pl.DataFrame(verified), TRAIN, TEST, TESTBED, CONSTRUCTION)


STATES = {"New York": (["New York", "Buffalo"], "NY"), "New Jersey": (["Newark", "Jersey City"], "NJ"), "Kansas": (["Wichita", "Topeka"], "KS")}


def state_question(state):
    text = f"Name a city in {state}."
    return {"state": state, "state_code": STATES[state][1], "question": text, "answers": STATES[state][0],
            "messages": [SYSTEM, {"role": "user", "content": text}]}  # fmt: skip


def test_constraint_values_are_rejected_as_answers_by_default(tiny_lm, monkeypatch):
    """The researcher's testbed: cities by state, the registry entry silent on reject_constraint_values."""
    train, test = pl.DataFrame([state_question("New York"), state_question("New Jersey")]), pl.DataFrame([state_question("Kansas")])
    replies = {0: ["New York is a big city.", "Kansas", "Kansas City"], 1: ["Buffalo", "New York", "KS"], 2: ["Texas", "NJ.", "Kansas"]}
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    monkeypatch.setattr(nodes, "sample_texts", lambda lm, prompts, settings, seeds, *a: {seed: replies[seed] for seed in seeds})
    entry = make_testbed(constraint_field="state", alias_field="state_code")
    del entry["reject_constraint_values"]  # the default, as the README's example leaves it
    construction = {**CONSTRUCTION, "sample_seeds": [0, 1, 2], "val_fraction": 0.0}
    samples = nodes.sample_answers(train, test, {}, entry, construction, model_params(2), RUNTIME)
    got = {(row["sample_seed"], row["index"], row["split"]): (row["name"], row["reason"]) for row in samples.iter_rows(named=True)}
    assert got[(0, 0, "train")] == ("New York", None)  # a state's name that is a right answer to its own question
    assert got[(0, 1, "train")] == (None, "constraint_value")  # a state where a city was asked for
    assert got[(0, 0, "test")] == ("Kansas City", None)  # a city, wrong for Kansas; not the state "Kansas"
    assert got[(1, 1, "train")] == (None, "constraint_value")  # "New York" for New Jersey: the state or the city? rejected
    assert got[(1, 0, "test")] == (None, "constraint_value")  # an alias (state_code) of another question's state
    assert got[(2, 0, "train")] == ("Texas", None)  # no question of the testbed is about Texas
    assert got[(2, 1, "train")] == (None, "constraint_value") and got[(2, 0, "test")] == (None, "constraint_value")
    assert set(samples.filter(pl.col("reason") == "constraint_value")["status"]) == {"invalid"}
    kept = nodes.sample_answers(train, test, {}, {**entry, "reject_constraint_values": False}, construction, model_params(2), RUNTIME)
    assert kept.filter(pl.col("reason") == "constraint_value").height == 0 and "Kansas" in kept["name"].to_list()


def test_rejection_reasons_name_the_rule():
    from retraction_kedro.pipelines.data_construction.answers import read_answer, read_llm_answer

    assert read_answer("I don't know.") == (None, "idk", "idk")
    assert read_answer("Here are some cities:") == (None, "invalid", "pointer")
    assert read_answer("Madonna is a singer.", min_words=2) == (None, "invalid", "too_few_words")
    assert read_answer("A B C D E F G", max_words=6) == (None, "invalid", "too_many_words")
    assert read_answer("Cities.") == (None, "invalid", "kind_word")
    assert read_answer("the big one") == (None, "invalid", "not_a_name")
    assert read_answer("42") == (None, "invalid", "no_letters")
    assert read_answer("") == (None, "invalid", "empty")
    assert read_llm_answer("NONE", "Cities are nice.") == (None, "invalid", "extractor_none")
    assert read_answer("Nairobi, of course.") == ("Nairobi", "ok", None)
