"""Batch planning and a crash-safe journal of finished batches.

Batches are formed from prompts sorted by token length (less padding, and the
longest batch first so an out-of-memory error shows at once). The journal is
keyed by a fingerprint of the work, so a rerun after a crash skips exactly the
batches that finished and never reuses results of different inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first; deterministic."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:20]


class BatchJournal:
    """Finished batches of one piece of work, on disk under ``root/<kind>-<fingerprint>``.

    Text results go to an append-only JSONL file (one line per batch, fsynced);
    tensor results to one safetensors file per batch written under a temporary
    name and renamed. With ``root=None`` the journal is a no-op.
    """

    def __init__(self, root: str | os.PathLike | None, kind: str, key: str):
        self.path = Path(root) / f"{kind}-{key}" if root else None
        if self.path:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def _texts(self) -> Path:
        assert self.path is not None
        return self.path / "batches.jsonl"

    def finished_texts(self) -> dict[int, list[Any]]:
        if not self.path or not self._texts.exists():
            return {}
        done: dict[int, list[Any]] = {}
        with self._texts.open() as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: that batch is redone
                    continue
                done[record["batch"]] = record["results"]
        if done:
            logger.info("Resuming from %s: %d batches already done", self.path, len(done))
        return done

    def record_texts(self, batch: int, results: list[Any]) -> None:
        if not self.path:
            return
        with self._texts.open("a") as handle:
            handle.write(json.dumps({"batch": batch, "results": results}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def finished_rows(self) -> dict[int, Any]:
        """Results of the examples already finished, by input row."""
        if not self.path or not self._texts.exists():
            return {}
        done: dict[int, Any] = {}
        with self._texts.open() as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: those rows are redone
                    continue
                done.update({int(row): tuple(result) for row, result in record["rows"].items()})
        if done:
            logger.info("Resuming from %s: %d examples already done", self.path, len(done))
        return done

    def record_rows(self, results: dict[int, Any]) -> None:
        """Append the results of examples that just finished (one line, fsynced)."""
        if not self.path or not results:
            return
        with self._texts.open("a") as handle:
            handle.write(json.dumps({"rows": {str(row): result for row, result in results.items()}}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def finished_tensors(self) -> dict[int, torch.Tensor]:
        if not self.path:
            return {}
        from safetensors.torch import load_file

        done = {int(p.stem.split("-")[1]): load_file(p)["values"] for p in sorted(self.path.glob("batch-*.safetensors"))}
        if done:
            logger.info("Resuming from %s: %d batches already done", self.path, len(done))
        return done

    def record_tensor(self, batch: int, values: torch.Tensor) -> None:
        if not self.path:
            return
        from safetensors.torch import save_file

        final = self.path / f"batch-{batch:06d}.safetensors"
        partial = final.with_suffix(".partial")
        save_file({"values": values.contiguous()}, partial)
        partial.rename(final)

    def close(self) -> None:
        """The work finished and its result is returned: the journal is no longer needed."""
        if self.path and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


def progress(total: int, desc: str, enabled: bool = True, initial: int = 0, unit: str = "example") -> Any:
    """A progress bar counted in examples (rate and time left), advanced with ``update(n)``; a no-op when disabled."""
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=2.0, smoothing=0.1)


class _NoProgress:
    def update(self, count: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
