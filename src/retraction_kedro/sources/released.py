"""The continuation sets the paper released, as a read-only Kedro dataset (``conf/paper_released``).

One entry per testbed and split; the model under study picks the released folder
(``released_model``), so ``--env paper_released`` serves each model its own sets. A model without
released sets fails when the catalog is built, before any model work; a split the paper did not
release for that model fails when a node reads it. Saving is refused: construction would otherwise
overwrite the paper's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from kedro.io.core import AbstractDataset, DatasetError

from retraction_kedro.datasets import rows_to_frame

from .paper import (
    DEFAULT_BASE_URL,
    DEFAULT_LOCAL_ROOT,
    RELEASED_CONTINUATIONS,
    continuation_file_key,
    continuation_file_path,
    fetch_paper_files,
    load_paper_table,
    released_model_folder,
    released_splits,
)


class ReleasedContinuationDataset(AbstractDataset[pl.DataFrame, pl.DataFrame]):
    """``testbed``'s ``split`` continuation set as the paper released it for ``model``, validated row by row.

    ``model`` is ``model.name``; ``released_model`` (``paper_data.released_model``) names the released
    folder when the model's name does not end in it. A missing file is downloaded under ``root`` from
    ``base_url`` (atomically, validated) unless ``allow_download`` is false.
    """

    # Loading fetches a missing file: no run has to make it first (retraction_kedro.upstream).
    fetched_on_load = True

    def __init__(
        self,
        testbed: str,
        split: str,
        model: str,
        released_model: str | None = None,
        root: str = DEFAULT_LOCAL_ROOT,
        base_url: str | None = None,
        allow_download: bool = True,
        timeout: float = 30.0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._folder = released_model_folder(model, released_model)
        self._released = split in released_splits(self._folder, testbed)
        self._key = continuation_file_key(testbed, split, self._folder)
        self._testbed, self._split, self._root = testbed, split, root
        self._fetch = {"base_url": base_url or DEFAULT_BASE_URL, "allow_download": allow_download, "timeout": timeout}
        self.metadata = metadata

    @property
    def _path(self) -> Path:
        return Path(self._root) / continuation_file_path(self._testbed, self._split, self._folder)

    def load(self) -> pl.DataFrame:
        if not self._released:
            released = {t: list(s) for t, s in RELEASED_CONTINUATIONS[self._folder].items()}
            raise DatasetError(
                f"The paper released no {self._testbed} {self._split} continuation set for {self._folder} (released: {released}); "
                f"run only the stages that read the released splits (e.g. --to-outputs {self._testbed}.retraction_report), "
                "or build this model's own sets without --env paper_released"
            )
        path = fetch_paper_files(self._root, [self._key], **self._fetch)[self._key]
        return rows_to_frame(load_paper_table(path, self._key))

    def save(self, data: pl.DataFrame) -> None:
        raise DatasetError(
            f"Refusing to write {self._path}: the paper's released {self._testbed} {self._split} set is read-only under "
            "--env paper_released; run data_construction_paper without that environment to build a model's own sets"
        )

    def _exists(self) -> bool:
        return self._released and self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"testbed": self._testbed, "split": self._split, "released_model": self._folder, "filepath": str(self._path),
                "released": self._released}  # fmt: skip
