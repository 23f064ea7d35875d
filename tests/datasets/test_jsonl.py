import polars as pl
import pytest
from kedro.io.core import DatasetError, Version

from retraction_kedro.datasets import JSONLDataset, JSONLFormatError

ROWS = pl.DataFrame({"question": ["Q1", "Q2"], "messages": [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "Q2"}]]})


def test_round_trip_keeps_nested_fields(tmp_path):
    dataset = JSONLDataset(str(tmp_path / "t.jsonl"), required_fields=["question"])
    dataset.save(ROWS)
    assert dataset.load().to_dicts() == ROWS.to_dicts()
    assert not list(tmp_path.glob("*.partial"))


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok"}\n\n{"question": oops}\n')
    with pytest.raises(JSONLFormatError, match=r"bad.jsonl, line 3: not valid JSON"):
        JSONLDataset(str(path)).load()


def test_missing_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"question": "a"}\n{"answer": "b"}\n')
    with pytest.raises(JSONLFormatError, match=r"t.jsonl, line 2: missing required field 'question'"):
        JSONLDataset(str(path), required_fields=["question"]).load()
    path.write_text('["not", "an object"]\n')
    with pytest.raises(JSONLFormatError, match="line 1: expected a JSON object"):
        JSONLDataset(str(path)).load()


def test_empty_or_incomplete_outputs_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="empty table"):
        JSONLDataset(str(tmp_path / "e.jsonl")).save(pl.DataFrame())
    with pytest.raises(DatasetError, match=r"missing required column\(s\) \['answer'\]"):
        JSONLDataset(str(tmp_path / "e.jsonl"), required_fields=["answer"]).save(ROWS)
    JSONLDataset(str(tmp_path / "ok.jsonl"), allow_empty=True).save(pl.DataFrame())
    assert not (tmp_path / "e.jsonl").exists()


def test_versioned_saves_do_not_overwrite(tmp_path):
    path = str(tmp_path / "v.jsonl")
    JSONLDataset(path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(ROWS.head(1))
    JSONLDataset(path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(ROWS)
    assert JSONLDataset(path, version=Version(None, None)).load().height == 2
    assert JSONLDataset(path, version=Version("2026-01-01T00.00.00.000Z", None)).load().height == 1


def test_missing_file_says_which_pipeline_to_run(tmp_path):
    with pytest.raises(DatasetError, match="does not exist; run the pipeline that produces it"):
        JSONLDataset(str(tmp_path / "absent.jsonl")).load()


def test_preview_for_kedro_viz(tmp_path):
    dataset = JSONLDataset(str(tmp_path / "p.jsonl"))
    dataset.save(ROWS)
    preview = dataset.preview(nrows=1)
    assert preview["columns"] == ["question", "messages"]
    assert preview["data"] == [["Q1", '[{"role": "user", "content": "Q1"}]']]
