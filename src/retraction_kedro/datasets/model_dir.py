"""Model directories (weights, adapters, tokenizers) as versioned catalog entries.

Saving takes anything with ``save_pretrained`` (a transformers model or tokenizer, a
peft adapter), a list of them (all in the folder itself) or a dict of them or of lists
of them (one subfolder per key), written into a temporary folder and renamed, so a
crash never leaves a half-written model. Loading returns the directory's path: the
model package (``retraction_kedro.lm``) decides how to load it, on which device.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version


class ModelDirectoryDataset(AbstractVersionedDataset[str, Any]):
    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=lambda p: Path(p).is_dir())

    def load(self) -> str:
        path = Path(self._get_load_path())
        if not path.is_dir():
            raise DatasetError(f"{path} does not exist; run the pipeline that produces this model first")
        return str(path)

    def save(self, data: Any) -> None:
        def listed(value: Any) -> list[Any]:
            return list(value) if isinstance(value, (list, tuple)) else [value]

        groups = data.items() if isinstance(data, dict) else [("", data)]
        parts = [(name, part) for name, value in groups for part in listed(value)]
        for name, part in parts:
            if not hasattr(part, "save_pretrained"):
                raise DatasetError(f"Cannot save {type(part).__name__} {name!r} to {self._filepath}: it has no save_pretrained")
        target = Path(self._get_save_path())
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for name, part in parts:
                part.save_pretrained(staging / name if name else staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_dir()
        except DatasetError:
            return False
