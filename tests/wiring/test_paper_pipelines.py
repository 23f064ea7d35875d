"""The paper's study end to end on files in the paper's layout written here, with a tiny model trained in seconds.

The world is invented: people born in made-up cities (WIKIDATA's "Name a {profession} who was born in
{city}, {country}.") and children of made-up parents (CELEBRITY's "Name a child of {parent}."). The
tiny model answers half the questions rightly and half with a person of another question, and knows
where each person was born and who their parents are, so construction keeps right answers it
confirms and wrong answers it contradicts in both testbeds. The files are served from 127.0.0.1 and
downloaded by the pipeline, as they would be from the paper's repository; `--env paper_released`
reads released sets written here for each of the three models.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import polars as pl
import pytest
import yaml
from kedro.io.core import DatasetError

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.naming import model_slug
from retraction_kedro.pipelines.data_construction.nodes import question_file_shots
from retraction_kedro.sources import PAPER_FILES, VERIFICATION_RESPONSE_FIELD, PaperDataUnavailable, continuation_file_path
from tests.conftest import PROJECT_ROOT, make_project, run_pipeline
from tests.sources.http_server import serve_files

from .conftest import FAST, train_tiny_chat_model, write_jsonl

pytestmark = pytest.mark.integration

SYSTEM = "Answer with the name first; say more after it if you like."
VERIFY = "Reply with the name only."
COUNTRY = {"Coralton": "Atlantis", "Muhaven": "Lemuria", "Thule": "Hyperborea", "Glaston": "Avalon", "Deepwell": "Agartha",
           "Goldmesa": "Cibola"}  # fmt: skip
# Surnames echo the birthplace or the parent: facts a 4-layer model learns in seconds, and still knows
# after the worked examples that come before a verification question.
BORN = {"Ada Coralton": "Coralton", "Ben Coralton": "Coralton", "Cai Muhaven": "Muhaven", "Dora Thule": "Thule", "Eli Glaston": "Glaston",
        "Fay Deepwell": "Deepwell", "Gus Goldmesa": "Goldmesa", "Hal Coralton": "Coralton", "Ivy Thule": "Thule"}  # fmt: skip
# (profession, city, the people of that profession born there, the answer the model learns)
WIKIDATA = {
    "train": [("painter", "Coralton", ["Ada Coralton", "Ben Coralton"], "Ada Coralton"), ("painter", "Muhaven", ["Cai Muhaven"], "Ada Coralton"),
              ("sailor", "Thule", ["Dora Thule"], "Dora Thule"), ("sailor", "Glaston", ["Eli Glaston"], "Dora Thule")],
    "test": [("poet", "Deepwell", ["Fay Deepwell"], "Fay Deepwell"), ("poet", "Goldmesa", ["Gus Goldmesa"], "Fay Deepwell"),
             ("baker", "Coralton", ["Hal Coralton"], "Hal Coralton"), ("baker", "Thule", ["Ivy Thule"], "Hal Coralton")],
}  # fmt: skip
# (parent, mother/father, their children, the answer the model learns)
CELEBRITY = {
    "train": [("Queen Mab", "mother", ["Puck Mab", "Pip Mab"], "Puck Mab"), ("Queen Morgana", "mother", ["Mordred Morgana"], "Puck Mab"),
              ("King Oberon", "father", ["Robin Oberon"], "Robin Oberon"), ("King Vortigern", "father", ["Vort Vortigern"], "Robin Oberon")],
    "test": [("Queen Titania", "mother", ["Ivo Titania"], "Ivo Titania"), ("Queen Hulda", "mother", ["Marie Hulda"], "Ivo Titania"),
             ("King Orsino", "father", ["Viola Orsino"], "Viola Orsino"), ("King Munch", "father", ["Karl Munch"], "Viola Orsino")],
}  # fmt: skip
PARENT = {child: (parent, kind) for split in CELEBRITY.values() for parent, kind, children, _ in split for child in children}
MODELS = ("Llama-3.1-8B-Instruct", "Qwen2.5-7B-Instruct", "OLMo-2-1124-7B-Instruct")


def chat(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def wikidata_question(number: int, profession: str, city: str, answers: list[str]) -> dict:
    question = f"Name a {profession} who was born in {city}, {COUNTRY[city]}."
    return {"profession_code": f"P{number}", "profession": profession, "city_code": f"C{sorted(COUNTRY).index(city)}", "city": city,
            "country": COUNTRY[city], "question": question, "messages": chat(question), "answers": answers}  # fmt: skip


def celebrity_question(parent: str, kind: str, children: list[str]) -> dict:
    question = f"Name a child of {parent}."
    return {"parent_type": kind, "parent_name": parent, "answers": children, "question": question, "messages": chat(question)}


def free_questions(testbed: str, split: str) -> list[dict]:
    if testbed == "wikidata":
        return [wikidata_question(number, p, c, a) for number, (p, c, a, _) in enumerate(WIKIDATA[split])]
    return [celebrity_question(parent, kind, children) for parent, kind, children, _ in CELEBRITY[split]]


def verification_shots(testbed: str) -> list[dict]:
    """The worked examples construction will put before every verification question of ``testbed``:
    its own node's choice, on these questions, with the project's registry entry and recipe."""
    conf = PROJECT_ROOT / "conf" / "base"
    entry = yaml.safe_load((conf / "parameters_testbeds.yml").read_text())["testbeds"][testbed]
    recipe = yaml.safe_load((conf / "parameters_data_construction.yml").read_text())["construction"]
    return question_file_shots(pl.DataFrame(free_questions(testbed, "train")), {}, entry, recipe)


def taught() -> list[list[dict]]:
    """The model's answers to every free question, and its replies to the verification questions about
    them, asked as construction asks them: where each person was born, who each child's parent is."""
    conversations = []
    for testbed, world in (("wikidata", WIKIDATA), ("celebrity", CELEBRITY)):
        shots = verification_shots(testbed)
        for split, entries in world.items():
            for question, (*_, answer) in zip(free_questions(testbed, split), entries, strict=True):
                conversations.append([*question["messages"], {"role": "assistant", "content": answer}])
        for answer in dict.fromkeys(entry[-1] for entries in world.values() for entry in entries):
            asked = f"Where was {answer} born?" if testbed == "wikidata" else f"Who is {answer}'s {PARENT[answer][1]}?"
            reply = BORN[answer] if testbed == "wikidata" else PARENT[answer][0]
            conversations.append([*shots, {"role": "user", "content": asked}, {"role": "assistant", "content": reply}])
    return conversations


def truthfulness(cities: list[str]) -> list[dict]:
    """UTQA-like rows: each question once with the right answer (label 1), once with another's (label 0)."""
    rows = []
    for number, city in enumerate(cities):
        question = f"which land is {city} in"
        wrong = COUNTRY[cities[(number + 1) % len(cities)]]
        for answer, label in ((COUNTRY[city], 1), (wrong, 0)):
            rows.append({"question": question, "answer": f"{answer}.", "label": label,
                         "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                         "tag": "nq_re", "activations_index": len(rows)})  # fmt: skip
    return rows


def paper_files() -> dict[str, list[dict]]:
    """The question files of the paper study, by registry key."""
    files = {f"{t}_{s}_free": free_questions(t, s) for t in ("wikidata", "celebrity") for s in ("train", "test")}
    files["truthfulness_train"] = truthfulness(["Coralton", "Muhaven", "Thule"]) * 4
    files["truthfulness_test"] = truthfulness(["Glaston", "Deepwell", "Goldmesa"]) * 4
    return files


def continuation(testbed: str, question: dict, index: int, name: str, model: str) -> dict:
    """A released row: the question's fields, the answer left open, its correctness and the verification
    reply (worded per model, so each model's set is its own)."""
    row = {k: v for k, v in question.items() if k != "answers"}
    row |= {"messages": [*question["messages"], {"role": "assistant", "content": name}], "name": name, "result": name in question["answers"]}
    reply = BORN[name] if testbed == "wikidata" else PARENT[name][0]
    row[VERIFICATION_RESPONSE_FIELD[testbed]] = f"{reply} ({model})."
    return {**row, "index": index}


def released_sets(model: str) -> dict[tuple[str, str], list[dict]]:
    """Each model's released sets, split as the paper released them: CELEBRITY train only for Llama,
    whose WIKIDATA train set has no verification reply; Qwen's and OLMo's CELEBRITY test sets unbalanced."""
    sets = {}
    for testbed, world in (("wikidata", WIKIDATA), ("celebrity", CELEBRITY)):
        for split in ("train", "test"):
            questions, answered = free_questions(testbed, split), [entry[-1] for entry in world[split]]
            rows = [continuation(testbed, q, i, name, model) for i, (q, name) in enumerate(zip(questions, answered, strict=True))]
            rows += [continuation(testbed, q, i, q["answers"][0], model) for i, q in enumerate(questions) if q["answers"][0] != answered[i]]
            sets[(testbed, split)] = rows
    sets[("wikidata", "val")] = sets[("wikidata", "train")][:2]
    if model == MODELS[0]:
        sets[("wikidata", "train")] = [{k: v for k, v in row.items() if k != "where_response"} for row in sets[("wikidata", "train")]]
    else:
        del sets[("celebrity", "train")]
        test = sets[("celebrity", "test")]
        sets[("celebrity", "test")] = [row for row in test if row["result"]][:3] + [row for row in test if not row["result"]][:1]
    return sets


@pytest.fixture(scope="module")
def tiny_paper_model(tmp_path_factory) -> str:
    """The tiny model of this world, trained in seconds."""
    vocabulary = [f"{message['role']}\n{message['content']}" for conversation in taught() for message in conversation]
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_paper_model"), vocabulary, taught(), vocab_size=700, steps=150)


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def latest(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_dir())[-1] / folder.name


PAPER_FAST = {**FAST, "testbeds": {"celebrity": {"sample_seeds": [0, 1, 2]}}}


def test_the_paper_study_runs_from_downloaded_files_to_the_report(tmp_path, monkeypatch, tiny_paper_model):
    """`kedro run --pipelines paper`: the files come from the server, construction keeps the model's own
    answers in both testbeds, and every *_paper stage runs through the report, whose numbers are the
    MLflow run's."""
    import mlflow

    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    with serve_files() as (handler, base_url):
        for key, rows in paper_files().items():
            handler.files["/data/" + PAPER_FILES[key].path] = jsonl(rows)
        paper_data = {"base_url": base_url, "timeout": 5}
        run_pipeline(project, "paper", {**PAPER_FAST, "model": {"name": tiny_paper_model, "batch_size": 4}, "paper_data": paper_data})
    assert sorted(handler.requests) == sorted("/data/" + PAPER_FILES[key].path for key in paper_files())
    slug = model_slug(tiny_paper_model)
    for testbed, world in (("wikidata", WIKIDATA), ("celebrity", CELEBRITY)):
        test_set = read_jsonl(str(latest(project / "data/03_primary" / slug / testbed / "continuation_test.jsonl")))
        questions = zip(free_questions(testbed, "test"), world["test"], strict=True)
        expected = {(question["question"], answer, answer in question["answers"]) for question, (*_, answer) in questions}
        assert {(row["question"], row["name"], row["result"]) for row in test_set} == expected, testbed

    numbers = json.loads(latest(project / "data/08_reporting" / slug / "paper_study" / "study_report_numbers.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    logged = mlflow.get_run(numbers["mlflow_run_id"]).data.metrics
    mismatched = {key: (value, logged.get(key)) for key, value in numbers["metrics"].items() if logged.get(key) != pytest.approx(value)}
    assert numbers["metrics"] and not mismatched, f"report numbers that differ from the MLflow run: {mismatched}"
    for key in ("wikidata.retraction_recall.ci_high", "celebrity.steer_neg.retraction_recall", "paper_study.sft.finetuned_celebrity.wikidata.retraction_recall"):
        assert key in numbers["metrics"], key


@pytest.fixture(scope="module")
def released_project(tmp_path_factory, tiny_paper_model) -> Path:
    """A project with the paper's question files and every model's released sets in the paper's layout,
    and the tiny model under each released model's name (a local copy named after the model)."""
    project = make_project(tmp_path_factory.mktemp("released"))
    root = project / "data/01_raw/paper"
    for key, rows in paper_files().items():
        write_jsonl(root / PAPER_FILES[key].path, rows)
    (project / "models").mkdir()
    for model in MODELS:
        for (testbed, split), rows in released_sets(model).items():
            write_jsonl(root / continuation_file_path(testbed, split, model), rows)
        (project / "models" / model).symlink_to(tiny_paper_model)
    return project


def released_params(model_name: str) -> dict:
    return {**PAPER_FAST, "model": {"name": model_name, "batch_size": 4}, "paper_data": {"allow_download": False}}


def as_loaded(testbed: str, rows: list[dict]) -> list[dict]:
    """Released rows as the catalog serves them: a WIKIDATA row without its verification reply gets None."""
    return [{**row, "where_response": row.get("where_response")} if testbed == "wikidata" else row for row in rows]


@pytest.mark.parametrize("model", MODELS)
def test_each_model_reads_its_own_released_sets(released_project, monkeypatch, model):
    """`--env paper_released`, model.name a directory named after the model: the catalog serves that
    model's sets and no other's; a split the paper did not release for it fails when read."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    monkeypatch.chdir(released_project)
    bootstrap_project(released_project)
    sets = released_sets(model)
    runtime_params = released_params(str(released_project / "models" / model))
    with KedroSession.create(project_path=released_project, env="paper_released", runtime_params=runtime_params) as session:
        catalog = session.load_context().catalog
        for testbed in ("wikidata", "celebrity"):
            for split in ("train", "val", "test"):
                name = f"{testbed}.continuation_{split}"
                if (testbed, split) in sets:
                    assert catalog.load(name).to_dicts() == as_loaded(testbed, sets[(testbed, split)]), name
                else:
                    with pytest.raises(DatasetError, match=f"released no {testbed} {split} continuation set for {model}"):
                        catalog.load(name)


AFTER_CONSTRUCTION = ["activations_paper", "evaluation_paper", "probing_paper", "interventions_paper", "sft_paper", "report_paper"]
FETCH = [f"{name}.fetch_paper_questions" for name in ("utqa", "wikidata", "celebrity")]
TEST_SETS_SCORED = [f"{testbed}.retraction_report" for testbed in ("wikidata", "celebrity")]
# The README's commands for a model without a released CELEBRITY train set: the WIKIDATA study, then
# CELEBRITY's test set (retraction and probes); as `kedro run --pipelines ... --namespaces ... --to-outputs ...`.
WITHOUT_CELEBRITY_TRAIN = [
    (AFTER_CONSTRUCTION[:-1], ["utqa", "wikidata", "finetuned_wikidata"], None),
    (AFTER_CONSTRUCTION[:3], ["celebrity"], ["celebrity.retraction_report", "celebrity.probe_summary"]),
]


def selected(names: list[str], namespaces: list[str] | None = None, to_outputs: list[str] | None = None) -> list[str]:
    """The nodes `kedro run --pipelines <names> --namespaces ... --to-outputs ...` runs, by Kedro's own filter."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project
    from kedro.pipeline import Pipeline

    bootstrap_project(Path.cwd())  # the pipelines of the project the test runs in
    pipe = sum((pipelines[name] for name in names), Pipeline([]))
    return [node.name for node in pipe.filter(node_namespaces=namespaces, to_outputs=to_outputs).nodes]


@pytest.mark.parametrize("model", MODELS[1:])
def test_unbalanced_released_sets_are_scored_over_their_wrong_answers(released_project, monkeypatch, model):
    """Qwen's and OLMo's CELEBRITY test sets (three right answers, one wrong here) are continued, judged
    and scored as released: recall counts the wrong answers only."""
    monkeypatch.chdir(released_project)
    params, sets = released_params(str(released_project / "models" / model)), released_sets(model)
    run_pipeline(released_project, "paper", params, env="paper_released", node_names=selected(AFTER_CONSTRUCTION[:2], to_outputs=TEST_SETS_SCORED))
    slug = model_slug(params["model"]["name"])
    for testbed in ("wikidata", "celebrity"):
        rows = sets[(testbed, "test")]
        judged = read_jsonl(str(latest(released_project / "data/07_model_output" / slug / testbed / "judged_continuations_test.jsonl")))
        assert [(r["name"], r["result"]) for r in judged] == [(r["name"], r["result"]) for r in rows]
        report = json.loads(latest(released_project / "data/08_reporting" / slug / testbed / "retraction.json").read_text())
        assert report["answer_accuracy"]["n"] == len(rows) and report["retraction_recall"]["n"] == sum(not r["result"] for r in rows), report


def test_the_commands_for_a_model_without_celebrity_train_read_only_released_splits(released_project, monkeypatch):
    """Qwen's and OLMo's README commands: the WIKIDATA study with its fine-tuned model, then CELEBRITY's
    test set (retraction and probes); no node of them reads a CELEBRITY split those models lack."""
    from kedro.framework.project import pipelines

    monkeypatch.chdir(released_project)
    expected = [{"wikidata.run_steering_sweep", "finetuned_wikidata.fine_tune", "finetuned_wikidata.celebrity.score_retraction"},
                {"celebrity.score_retraction", "celebrity.evaluate_probes_on_testbed"}]  # fmt: skip
    read = set()
    for (names, namespaces, outputs), wanted in zip(WITHOUT_CELEBRITY_TRAIN, expected, strict=True):
        nodes = set(selected(names, namespaces, outputs))
        assert wanted <= nodes, wanted - nodes
        read |= {name for pipe in names for node in pipelines[pipe].nodes if node.name in nodes for name in node.inputs}
    assert "celebrity.continuation_test" in read and not {"celebrity.continuation_train", "celebrity.continuation_val"} & read


def test_the_released_llama_sets_run_every_stage_after_construction(released_project, monkeypatch):
    """The README's two commands: fetch the question files, then every stage after construction on
    the released sets (Llama's WIKIDATA train set has no verification reply)."""
    monkeypatch.chdir(released_project)
    params = released_params(str(released_project / "models" / MODELS[0]))
    run_pipeline(released_project, "data_construction_paper", params, node_names=FETCH)
    run_pipeline(released_project, "paper", params, env="paper_released", node_names=selected(AFTER_CONSTRUCTION))
    slug, sets = model_slug(params["model"]["name"]), released_sets(MODELS[0])
    examples = read_jsonl(str(latest(released_project / "data/05_model_input" / slug / "finetuned_wikidata" / "sft_examples.jsonl")))
    released_train = {(row["name"], row["result"]) for row in sets[("wikidata", "train")]}
    assert {(row["name"], row["result"]) for row in examples} <= released_train  # balanced by sft.balance: all wrong ones kept
    assert {(name, result) for name, result in released_train if not result} <= {(row["name"], row["result"]) for row in examples}
    numbers = json.loads(latest(released_project / "data/08_reporting" / slug / "paper_study" / "study_report_numbers.json").read_text())
    for testbed in ("wikidata", "celebrity"):
        assert numbers["metrics"][f"{testbed}.retraction_recall.n"] == sum(not row["result"] for row in sets[(testbed, "test")])
    assert "paper_study.sft.finetuned_celebrity.wikidata.retraction_recall.n" in numbers["metrics"]


def test_a_model_without_released_sets_stops_the_run_before_any_work(released_project, monkeypatch, tiny_paper_model):
    monkeypatch.chdir(released_project)
    with pytest.raises(DatasetError) as info:
        run_pipeline(released_project, "evaluation_paper", released_params(tiny_paper_model), env="paper_released")
    lines = [line for line in str(info.value).splitlines() if "released no continuation sets" in line]
    assert len(lines) == 1 and tiny_paper_model in lines[0] and all(model in lines[0] for model in MODELS), str(info.value)
    assert not (released_project / "data/07_model_output" / model_slug(tiny_paper_model)).exists()


def unused_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("server", ["corrupt", "unreachable"])
def test_a_corrupt_download_is_refused_and_an_unreachable_server_named(released_project, monkeypatch, tmp_path, server):
    """Through the fetch node: a served file with a bad row is refused naming URL, line and field, and
    nothing of it is kept; a server nobody answers at gives the offline message."""
    monkeypatch.chdir(released_project)
    train, test = PAPER_FILES["truthfulness_train"].path, PAPER_FILES["truthfulness_test"].path
    rows = paper_files()["truthfulness_train"]
    with serve_files() as (handler, base_url):
        handler.files["/data/" + train] = jsonl([rows[0], {**rows[1], "label": 2}])
        handler.files["/data/" + test] = jsonl(paper_files()["truthfulness_test"])
        url = base_url if server == "corrupt" else f"http://127.0.0.1:{unused_port()}/data/"
        params = {"paper_data": {"root": str(tmp_path), "base_url": url, "timeout": 5}}
        with pytest.raises(PaperDataUnavailable) as info:
            run_pipeline(released_project, "data_construction_paper", params, node_names=["utqa.fetch_paper_questions"])
    message = str(info.value)
    if server == "corrupt":
        assert f"{url}{train}" in message and "line 2: field 'label' must be 0 or 1, got 2" in message, message
        assert (tmp_path / test).is_file()  # the good file is kept, validated
    else:
        assert f"{url}{train}" in message and "cannot connect" in message and "copy the paper's data/ folder" in message, message
    assert not (tmp_path / train).exists() and not list(tmp_path.rglob("*.partial"))
