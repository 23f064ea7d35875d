"""The paper's released files: registry, validation and fetching (local copy or download).

All fixtures are invented rows in the paper's schema; the real files are only read from
../shared/paper-data when that folder exists.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from kedro.io.core import DatasetError

from retraction_kedro.datasets.jsonl import JSONLFormatError
from retraction_kedro.sources import (
    DEFAULT_BASE_URL,
    PAPER_FILES,
    REQUIRED_FIELDS,
    NoReleasedSets,
    PaperDataUnavailable,
    ReleasedContinuationDataset,
    continuation_file_key,
    continuation_file_path,
    fetch_paper_files,
    load_paper_table,
    normalize_continuation_rows,
    paper_file,
    released_model_folder,
)

from .http_server import serve_files

SYSTEM = "You are a test assistant. Always begin responses with the direct answer."


def wikidata_free_row(**overrides):
    question = "Name a gardener who was born in Exampleton, Testland."
    row = {
        "profession_code": "Q1", "profession": "gardener", "city_code": "Q2", "city": "Exampleton",
        "country": "Testland", "question": question,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "answers": ["Ada Placeholder", "Bo Fictional"],
    }
    return {**row, **overrides}


def celebrity_free_row(**overrides):
    question = "Name a child of Alice Example."
    row = {
        "parent_type": "mother", "parent_name": "Alice Example", "answers": ["Carol Example"], "question": question,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
    }
    return {**row, **overrides}


def truthfulness_row(**overrides):
    row = {
        "question": "what colour is the invented sky of planet zed", "answer": "Mauve.", "label": 1,
        "messages": [{"role": "user", "content": "what colour is the invented sky of planet zed"},
                     {"role": "assistant", "content": "Mauve"}],
        "tag": "nq_re", "activations_index": 0,
    }
    return {**row, **overrides}


def continuation_row(testbed="celebrity", name="Carol Example", result=True, **overrides):
    base = celebrity_free_row() if testbed == "celebrity" else wikidata_free_row()
    base.pop("answers")
    base["messages"] = [*base["messages"], {"role": "assistant", "content": name}]
    base.update(name=name, result=result, index=0)
    if testbed == "celebrity":
        base["parent_response"] = "Alice Example"
    else:
        base["where_response"] = "Exampleton."
    return {**base, **overrides}


def parent_row(**overrides):
    row = {
        "parent_type": "mother", "parent_name": "Alice Example", "question": "Who is Carol Example's mother?",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Who is Carol Example's mother?"}],
        "name": "Carol Example", "result": True, "index": 0,
    }
    return {**row, **overrides}


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), encoding="utf-8")
    return path


def jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


# --------------------------------------------------------------------------- registry


def test_registry_keys_paths_and_kinds():
    expected = {
        "wikidata_train_free": ("wikidata/wikidata_train_free.jsonl", "wikidata_free"),
        "wikidata_test_free": ("wikidata/wikidata_test_free.jsonl", "wikidata_free"),
        "celebrity_train_free": ("celebrity/celebrity_train_free.jsonl", "celebrity_free"),
        "celebrity_test_free": ("celebrity/celebrity_test_free.jsonl", "celebrity_free"),
        "truthfulness_train": ("universal_truthfulness/truthfulness_train.jsonl", "truthfulness"),
        "truthfulness_test": ("universal_truthfulness/truthfulness_test.jsonl", "truthfulness"),
        "celebrity_train_parent": ("celebrity/celebrity_train_parent.jsonl", "celebrity_parent"),
        "celebrity_test_parent": ("celebrity/celebrity_test_parent.jsonl", "celebrity_parent"),
        "wikidata_val_continuation": (
            "wikidata/wikidata_continuation/Llama-3.1-8B-Instruct/wikidata_val_continuation.jsonl", "wikidata_continuation"),
        "celebrity_test_continuation": (
            "celebrity/celebrity_continuation/Llama-3.1-8B-Instruct/celebrity_test_continuation.jsonl", "celebrity_continuation"),
    }
    for key, (path, kind) in expected.items():
        assert (PAPER_FILES[key].path, PAPER_FILES[key].kind) == (path, kind), key
    for key in ("wikidata_train_continuation", "wikidata_test_continuation", "celebrity_train_continuation"):
        assert key in PAPER_FILES
    assert all(entry.kind in REQUIRED_FIELDS for entry in PAPER_FILES.values())
    assert PAPER_FILES["truthfulness_sciq_vali"].format == "json"
    assert "where_response" in REQUIRED_FIELDS["wikidata_continuation"]
    assert "parent_response" in REQUIRED_FIELDS["celebrity_continuation"]
    assert DEFAULT_BASE_URL == "https://raw.githubusercontent.com/ayyyq/llm-retraction/main/data/"


def test_continuation_helpers_take_the_model_name():
    assert continuation_file_key("wikidata", "test") == "wikidata_test_continuation"
    assert PAPER_FILES[continuation_file_key("celebrity", "train")].path == continuation_file_path("celebrity", "train")
    key = continuation_file_key("wikidata", "test", "Qwen2.5-7B-Instruct")
    assert key == "wikidata_test_continuation@Qwen2.5-7B-Instruct"
    entry = paper_file(key)
    assert entry.path == "wikidata/wikidata_continuation/Qwen2.5-7B-Instruct/wikidata_test_continuation.jsonl"
    assert entry.kind == "wikidata_continuation" and "where_response" in entry.required_fields
    with pytest.raises(ValueError, match="testbed"):
        continuation_file_path("imdb", "test")
    with pytest.raises(ValueError, match="split"):
        continuation_file_key("celebrity", "dev")
    with pytest.raises(ValueError, match="unknown paper file key"):
        paper_file("no_such_file")


# --------------------------------------------------------------------------- loading and validation


@pytest.mark.parametrize(
    ("kind_or_key", "rows"),
    [
        ("wikidata_free", [wikidata_free_row()]),
        ("celebrity_test_free", [celebrity_free_row(), celebrity_free_row(parent_type="father")]),
        ("truthfulness", [truthfulness_row(), truthfulness_row(label=0, answer="Teal.")]),
        ("celebrity_continuation", [continuation_row(), continuation_row(name="Dan Madeup", result=False)]),
        ("wikidata_test_continuation", [continuation_row("wikidata", name="Ada Placeholder")]),
        ("celebrity_parent", [parent_row()]),
    ],
)
def test_valid_fixtures_load(tmp_path, kind_or_key, rows):
    path = write_jsonl(tmp_path / "table.jsonl", ["", *rows])  # a blank line is skipped
    assert load_paper_table(path, kind_or_key) == rows


def test_json_source_files_load_and_errors_name_the_item(tmp_path):
    path = tmp_path / "probe_train.json"
    rows = [{"question": "is zed a planet", "answer": "Yes.", "label": 1}, {"question": "q2", "answer": "No.", "label": 0}]
    path.write_text(json.dumps(rows, indent=4), encoding="utf-8")
    assert load_paper_table(path, "truthfulness_sciq_train") == rows
    path.write_text(json.dumps([rows[0], {"question": "q2", "answer": "No.", "label": 7}]), encoding="utf-8")
    with pytest.raises(JSONLFormatError, match=r"probe_train\.json, item 2: field 'label'"):
        load_paper_table(path, "truthfulness_source")
    path.write_text(json.dumps([rows[0], {"question": "q2", "label": 0}]), encoding="utf-8")
    with pytest.raises(JSONLFormatError, match=r"item 2: missing required field 'answer'"):
        load_paper_table(path, "truthfulness_source")


@pytest.mark.parametrize(
    ("kind", "bad_row", "field"),
    [
        ("wikidata_free", wikidata_free_row(answers=[]), "answers"),
        ("wikidata_free", wikidata_free_row(answers=["Ada Placeholder", 3]), "answers"),
        ("celebrity_free", celebrity_free_row(answers="Carol Example"), "answers"),
        ("celebrity_free", celebrity_free_row(messages=[{"role": "user"}]), "messages"),
        ("celebrity_free", celebrity_free_row(messages="Name a child of Alice Example."), "messages"),
        ("truthfulness", truthfulness_row(label=2), "label"),
        ("truthfulness", truthfulness_row(label="1"), "label"),
        ("celebrity_continuation", continuation_row(result="true"), "result"),
        ("celebrity_continuation", continuation_row(result=1), "result"),
        ("celebrity_continuation", continuation_row(index="3"), "index"),
        ("wikidata_continuation", continuation_row("wikidata", where_response=["Exampleton"]), "where_response"),
        ("celebrity_continuation", {**continuation_row(), "name": "Someone Else Entirely"}, "messages"),
    ],
)
def test_wrong_types_name_file_line_and_field(tmp_path, kind, bad_row, field):
    path = write_jsonl(tmp_path / "bad.jsonl", [_valid_for(kind), bad_row])
    with pytest.raises(JSONLFormatError) as info:
        load_paper_table(path, kind)
    message = str(info.value)
    assert str(path) in message and "line 2" in message and repr(field) in message, message


def _valid_for(kind):
    return {
        "wikidata_free": wikidata_free_row(),
        "celebrity_free": celebrity_free_row(),
        "truthfulness": truthfulness_row(),
        "celebrity_continuation": continuation_row(),
        "wikidata_continuation": continuation_row("wikidata", name="Ada Placeholder"),
    }[kind]


def test_malformed_line_and_missing_field_name_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "broken.jsonl", [celebrity_free_row(), '{"parent_type": "mother", "parent_'])
    with pytest.raises(JSONLFormatError, match=r"broken\.jsonl, line 2: not valid JSON"):
        load_paper_table(path, "celebrity_free")
    row = celebrity_free_row()
    del row["parent_name"]
    path = write_jsonl(tmp_path / "missing.jsonl", [celebrity_free_row(), "", row])
    with pytest.raises(JSONLFormatError, match=r"missing\.jsonl, line 3: missing required field 'parent_name'"):
        load_paper_table(path, "celebrity_free")


def test_unknown_kind_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [truthfulness_row()])
    with pytest.raises(ValueError, match="neither a paper file key nor a kind"):
        load_paper_table(path, "truthiness")


def test_wikidata_train_continuation_release_lacks_where_response(tmp_path):
    row = continuation_row("wikidata", name="Ada Placeholder")
    del row["where_response"]
    path = write_jsonl(tmp_path / "wikidata_train_continuation.jsonl", [row])
    # By kind the verification response is required ...
    with pytest.raises(JSONLFormatError, match=r"line 1: missing required field 'where_response'"):
        load_paper_table(path, "wikidata_continuation")
    # ... the released Llama train set (loaded by key) has none: it is filled with None.
    (loaded,) = load_paper_table(path, "wikidata_train_continuation")
    assert loaded == {**row, "where_response": None}
    assert list(loaded)[: len(row)] == list(row)  # released keys kept as they are, in order


def test_normalize_continuation_rows_validates_constructed_rows():
    rows = [continuation_row(), continuation_row(name="Dan Madeup", result=False)]
    assert normalize_continuation_rows(rows, "celebrity") == rows
    assert normalize_continuation_rows([{k: v for k, v in rows[0].items() if k != "parent_response"}], "celebrity")[0][
        "parent_response"
    ] is None
    with pytest.raises(JSONLFormatError, match=r"built, row 2: field 'result'"):
        normalize_continuation_rows([rows[0], {**rows[1], "result": None}], "celebrity", source="built")
    with pytest.raises(JSONLFormatError, match=r"row 1: missing required field 'index'"):
        normalize_continuation_rows([{k: v for k, v in rows[0].items() if k != "index"}], "celebrity")
    with pytest.raises(ValueError, match="testbed"):
        normalize_continuation_rows(rows, "imdb")


# --------------------------------------------------------------------------- fetching


@pytest.fixture
def server():
    with serve_files() as served:
        yield served


def _no_partials(root: Path) -> bool:
    return not list(root.rglob("*.partial"))


def test_local_file_is_used_without_network(tmp_path):
    local = write_jsonl(tmp_path / PAPER_FILES["celebrity_test_free"].path, [celebrity_free_row()])
    got = fetch_paper_files(tmp_path, ["celebrity_test_free"], base_url="http://127.0.0.1:9/", allow_download=False)
    assert got == {"celebrity_test_free": local}


def test_download_success_writes_validated_file(tmp_path, server):
    handler, base_url = server
    rows = [continuation_row(), continuation_row(name="Dan Madeup", result=False)]
    handler.files["/data/" + PAPER_FILES["celebrity_test_continuation"].path] = jsonl_bytes(rows)
    handler.files["/data/" + PAPER_FILES["truthfulness_sciq_vali"].path] = json.dumps(
        [{"question": "q", "answer": "a.", "label": 0}]).encode()
    got = fetch_paper_files(tmp_path, ["celebrity_test_continuation", "truthfulness_sciq_vali"], base_url=base_url, timeout=5)
    target = tmp_path / PAPER_FILES["celebrity_test_continuation"].path
    assert got["celebrity_test_continuation"] == target
    assert load_paper_table(target, "celebrity_test_continuation") == rows
    assert got["truthfulness_sciq_vali"].is_file()
    assert _no_partials(tmp_path)
    # Present now: a second call does not download again.
    count = len(handler.requests)
    fetch_paper_files(tmp_path, ["celebrity_test_continuation"], base_url=base_url, timeout=5)
    assert len(handler.requests) == count


def test_404_gives_one_clear_message(tmp_path, server):
    handler, base_url = server
    handler.files["/data/" + PAPER_FILES["celebrity_test_free"].path] = jsonl_bytes([celebrity_free_row()])
    with pytest.raises(PaperDataUnavailable) as info:
        fetch_paper_files(tmp_path, ["celebrity_test_free", "wikidata_test_free"], base_url=base_url, timeout=5)
    message = str(info.value)
    entry = PAPER_FILES["wikidata_test_free"]
    assert "1 file(s)" in message
    assert "wikidata_test_free" in message and str(tmp_path / entry.path) in message
    assert base_url + entry.path in message and "HTTP 404" in message
    assert "copy the paper's data/ folder" in message and "data/01_raw/paper" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / entry.path).exists() and _no_partials(tmp_path)
    assert (tmp_path / PAPER_FILES["celebrity_test_free"].path).is_file()  # the good one was kept


@pytest.mark.parametrize(
    ("body", "claimed", "reason"),
    [
        (b"<html>rate limited</html>\n", None, "not valid JSON"),
        (jsonl_bytes([celebrity_free_row()]) + b'{"parent_type": "fa', None, "line 2: not valid JSON"),
        (jsonl_bytes([celebrity_free_row()]), 10_000, ""),  # connection closes before Content-Length bytes
        (jsonl_bytes([{"parent_type": "mother"}]), None, "line 1: missing required field 'parent_name'"),
        (jsonl_bytes([celebrity_free_row(), celebrity_free_row(answers=[])]), None, "line 2: field 'answers' must be a non-empty list"),
        (jsonl_bytes([celebrity_free_row(parent_type="aunt")]), None, "line 1: field 'parent_type' must be 'mother' or 'father'"),
        (b"", None, "no rows"),
    ],
)
def test_garbage_or_truncated_download_is_rejected_and_nothing_left(tmp_path, server, body, claimed, reason):
    handler, base_url = server
    path = "/data/" + PAPER_FILES["celebrity_train_free"].path
    handler.files[path] = body
    if claimed is not None:
        handler.claimed_length[path] = claimed
    with pytest.raises(PaperDataUnavailable) as info:
        fetch_paper_files(tmp_path, ["celebrity_train_free"], base_url=base_url, timeout=5)
    message = str(info.value)
    assert reason in message and str(tmp_path / PAPER_FILES["celebrity_train_free"].path) in message
    assert base_url + PAPER_FILES["celebrity_train_free"].path in message  # the file served, by its URL
    assert not (tmp_path / PAPER_FILES["celebrity_train_free"].path).exists()
    assert _no_partials(tmp_path)


def test_offline_and_missing_without_download(tmp_path):
    with pytest.raises(PaperDataUnavailable) as info:
        fetch_paper_files(tmp_path / "paper", ["truthfulness_train", "celebrity_train_continuation"], allow_download=False)
    message = str(info.value)
    assert "2 file(s)" in message and "allow_download=False" in message and "data/01_raw/paper" in message
    for key in ("truthfulness_train", "celebrity_train_continuation"):
        assert str(tmp_path / "paper" / PAPER_FILES[key].path) in message
        assert DEFAULT_BASE_URL + PAPER_FILES[key].path in message
    assert "copy the paper's data/ folder" in message
    assert not (tmp_path / "paper").exists()


def test_unreachable_host_stops_after_first_failure(tmp_path):
    with socket.socket() as sock:  # a port with nobody listening: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PaperDataUnavailable) as info:
        fetch_paper_files(tmp_path, ["truthfulness_train", "truthfulness_test"], base_url=f"http://127.0.0.1:{port}/", timeout=2)
    message = str(info.value)
    assert "cannot connect" in message and "not tried after an earlier connection failure" in message
    assert "Traceback" not in message and _no_partials(tmp_path)


# --------------------------------------------------------------------------- the released sets of every model

MODELS = ("Llama-3.1-8B-Instruct", "Qwen2.5-7B-Instruct", "OLMo-2-1124-7B-Instruct")


def test_the_registry_lists_exactly_the_released_continuation_sets():
    released = [(model, "wikidata", split) for model in MODELS for split in ("train", "test", "val")]
    released += [(MODELS[0], "celebrity", "train")] + [(model, "celebrity", "test") for model in MODELS]
    expected = {f"{t}/{t}_continuation/{m}/{t}_{s}_continuation.jsonl" for m, t, s in released}
    assert {entry.path for entry in PAPER_FILES.values() if entry.kind.endswith("_continuation")} == expected


@pytest.mark.parametrize(
    ("model_name", "override", "folder"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", None, "Llama-3.1-8B-Instruct"),
        ("Qwen/Qwen2.5-7B-Instruct", None, "Qwen2.5-7B-Instruct"),
        ("allenai/OLMo-2-1124-7B-Instruct", None, "OLMo-2-1124-7B-Instruct"),
        ("/models/qwen2.5-7b-instruct/", None, "Qwen2.5-7B-Instruct"),  # a local copy named after the model
        ("/hub/models--allenai--OLMo-2-1124-7B-Instruct/snapshots/0a1b2c", "olmo-2-1124-7b-instruct", "OLMo-2-1124-7B-Instruct"),
    ],
)
def test_the_released_folder_follows_the_model_name_or_the_override(model_name, override, folder):
    assert released_model_folder(model_name, override) == folder


@pytest.mark.parametrize(
    ("model_name", "override", "named"),
    [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", None, "model.name 'HuggingFaceTB/SmolLM2-135M-Instruct'"),
        ("meta-llama/Llama-3.1-8B", None, "model.name 'meta-llama/Llama-3.1-8B'"),  # the base model is another model
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-7B", "paper_data.released_model 'Qwen2.5-7B'"),  # the override is not second-guessed
    ],
)
def test_a_model_without_released_sets_fails_with_one_line_naming_those_with_them(model_name, override, named):
    with pytest.raises(NoReleasedSets) as info:
        released_model_folder(model_name, override)
    message = str(info.value)
    assert "\n" not in message and named in message and all(model in message for model in MODELS), message


def released(testbed, model, rights, wrongs, where=True):
    """``rights`` right and ``wrongs`` wrong answers, named after ``model`` so each model's set is its own."""
    rows = [continuation_row(testbed, name=f"{model} Right{i}", result=True, index=i) for i in range(rights)]
    rows += [continuation_row(testbed, name=f"{model} Wrong{i}", result=False, index=rights + i) for i in range(wrongs)]
    return rows if where else [{k: v for k, v in row.items() if k != "where_response"} for row in rows]


@pytest.mark.parametrize("model", MODELS)
def test_each_model_loads_its_own_released_sets_validated_and_as_released(tmp_path, model):
    """The unbalanced CELEBRITY test sets of Qwen and OLMo load as they are (nothing rebalanced)."""
    sets = {("celebrity", "test"): released("celebrity", model, 3, 1), ("wikidata", "val"): released("wikidata", model, 1, 1)}
    sets[("wikidata", "train")] = released("wikidata", model, 2, 2, where=model != MODELS[0])  # Llama's has no where_response
    for (testbed, split), rows in sets.items():
        write_jsonl(tmp_path / continuation_file_path(testbed, split, model), rows)
    for (testbed, split), rows in sets.items():
        dataset = ReleasedContinuationDataset(testbed, split, model=f"org/{model}", root=str(tmp_path), allow_download=False)
        assert dataset.exists()
        expected = [{**row, "where_response": row.get("where_response")} if testbed == "wikidata" else row for row in rows]
        assert dataset.load().to_dicts() == expected, (testbed, split)


def test_a_split_not_released_for_the_model_fails_when_read(tmp_path):
    dataset = ReleasedContinuationDataset("celebrity", "train", model="Qwen/Qwen2.5-7B-Instruct", root=str(tmp_path))
    assert not dataset.exists()
    with pytest.raises(DatasetError) as info:
        dataset.load()
    message = str(info.value).strip()
    assert "released no celebrity train continuation set for Qwen2.5-7B-Instruct" in message and "'celebrity': ['test']" in message
    assert "\n" not in message and not list(tmp_path.iterdir())


def test_released_sets_are_read_only(tmp_path):
    path = write_jsonl(tmp_path / continuation_file_path("wikidata", "test", MODELS[1]), released("wikidata", MODELS[1], 1, 1))
    before = path.read_bytes()
    dataset = ReleasedContinuationDataset("wikidata", "test", model=MODELS[1], root=str(tmp_path), allow_download=False)
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(dataset.load())
    assert path.read_bytes() == before


def test_a_missing_released_set_is_downloaded_or_refused_whole(tmp_path, server):
    handler, base_url = server
    rows = released("wikidata", MODELS[1], 2, 1)
    handler.files["/data/" + continuation_file_path("wikidata", "test", MODELS[1])] = jsonl_bytes(rows)
    bad = continuation_file_path("wikidata", "test", MODELS[2])
    handler.files["/data/" + bad] = jsonl_bytes([rows[0], {**rows[1], "result": "false"}])
    options = {"root": str(tmp_path), "base_url": base_url, "timeout": 5}
    assert ReleasedContinuationDataset("wikidata", "test", model=MODELS[1], **options).load().to_dicts() == rows
    assert (tmp_path / continuation_file_path("wikidata", "test", MODELS[1])).is_file()
    with pytest.raises(DatasetError) as info:
        ReleasedContinuationDataset("wikidata", "test", model=MODELS[2], **options).load()
    message = str(info.value)
    assert base_url + bad in message and "line 2: field 'result' must be a boolean" in message
    assert not (tmp_path / bad).exists() and _no_partials(tmp_path)


# --------------------------------------------------------------------------- the real release, when present

_PAPER_DATA_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "paper-data", Path("/work/shared/paper-data")]
PAPER_DATA = next((p for p in _PAPER_DATA_CANDIDATES if p.is_dir()), None)


@pytest.mark.skipif(PAPER_DATA is None, reason="the paper's data folder (../shared/paper-data) is not available")
def test_every_released_file_present_validates():
    present = {key: entry for key, entry in PAPER_FILES.items() if (PAPER_DATA / entry.path).is_file()}
    assert present, "no registered file found under the paper data folder"
    paths = fetch_paper_files(PAPER_DATA, present, allow_download=False)
    for key, path in paths.items():
        rows = load_paper_table(path, key)
        assert rows, key
        if present[key].kind.endswith("_continuation"):
            response = "where_response" if present[key].kind.startswith("wikidata") else "parent_response"
            assert all(response in row for row in rows), key
    registered = {entry.path for entry in PAPER_FILES.values()}
    unregistered = [
        str(p.relative_to(PAPER_DATA)) for p in PAPER_DATA.rglob("*.json*")
        if str(p.relative_to(PAPER_DATA)) not in registered
    ]
    assert not unregistered, f"files in the release without a registry key: {unregistered}"
