"""JSON Lines tables: strict line-by-line parsing with errors that name file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

import fsspec
import polars as pl
from kedro_datasets._typing import TablePreview
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path


class JSONLFormatError(DatasetError):
    """A JSONL input that cannot be used as it is; the message names file, line and field."""


def parse_jsonl_lines(lines: Iterable[str], source: str, required_fields: Sequence[str] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise JSONLFormatError(f"{source}, line {number}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(row, dict):
            raise JSONLFormatError(f"{source}, line {number}: expected a JSON object, got {type(row).__name__}")
        missing = [field for field in required_fields if field not in row]
        if missing:
            raise JSONLFormatError(f"{source}, line {number}: missing required field {missing[0]!r}" + (f" (and {missing[1:]})" if len(missing) > 1 else ""))
        rows.append(row)
    return rows


def read_jsonl(path: str, required_fields: Sequence[str] = (), fs: Any = None) -> list[dict[str, Any]]:
    fs = fs or fsspec.filesystem(get_protocol_and_path(path)[0])
    with fs.open(path, mode="r", encoding="utf-8") as handle:
        return parse_jsonl_lines(handle, path, required_fields)


def rows_to_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.from_dicts(rows, infer_schema_length=None) if rows else pl.DataFrame()


class JSONLDataset(AbstractVersionedDataset[pl.DataFrame, pl.DataFrame]):
    """A JSON Lines table loaded as a polars DataFrame, validated line by line.

    ``required_fields`` are checked on load (an input with a missing field fails
    naming file and line) and on save (an output never lacks them). Empty tables
    are refused on save unless ``allow_empty``: an empty artifact is a bug upstream.
    """

    def __init__(
        self,
        filepath: str,
        required_fields: Sequence[str] = (),
        allow_empty: bool = False,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self._required = list(required_fields)
        self._allow_empty = allow_empty
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> pl.DataFrame:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        if not self._fs.exists(path):
            raise DatasetError(f"{path} does not exist; run the pipeline that produces it first")
        return rows_to_frame(read_jsonl(path, self._required, self._fs))

    def save(self, data: pl.DataFrame) -> None:
        if isinstance(data, list):
            data = rows_to_frame(data)
        missing = [field for field in self._required if field not in data.columns]
        if missing and data.height:
            raise DatasetError(f"Refusing to save {self._filepath}: missing required column(s) {missing}")
        if data.height == 0 and not self._allow_empty:
            raise DatasetError(f"Refusing to save an empty table to {self._filepath}")
        path = get_filepath_str(self._get_save_path(), self._protocol)
        partial = f"{path}.partial"
        self._fs.mkdirs(str(PurePosixPath(path).parent), exist_ok=True)
        with self._fs.open(partial, mode="w", encoding="utf-8") as handle:
            for row in data.iter_rows(named=True):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fs.mv(partial, path)
        self._invalidate_cache()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "required_fields": self._required, "version": self._version}

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def preview(self, nrows: int = 10) -> TablePreview:
        """The first rows for kedro-viz's table preview (nested values shown as JSON)."""
        frame = self.load().head(nrows)
        cell = lambda v: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False)  # noqa: E731
        return TablePreview(
            {"index": list(range(frame.height)), "columns": frame.columns, "data": [[cell(v) for v in row] for row in frame.iter_rows()]}
        )

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(str(self._filepath))
