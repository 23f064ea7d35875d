"""What a run shows per node: one line when it starts, one when it ends with its time and the size of
what it made, and, when the run stops, the nodes to give ``kedro run --from-nodes``.

Kedro's own per-node lines and its resume hint go to the log file only (conf/logging.yml); these
replace them on the console, one line each, and also name the nodes when a run is interrupted.
"""

from __future__ import annotations

import json
import logging
from time import perf_counter
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline

from retraction_kedro.logs import log_files, shown_path, write_to_log_files

logger = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def data_bytes(size: int) -> str:
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def output_size(data: Any) -> str | None:
    """Rows of a table, else bytes: of tensors and arrays in memory, of text, of JSON as it is written."""
    if hasattr(data, "columns") and hasattr(data, "shape"):  # polars and pandas frames
        return f"{data.shape[0]:,} rows"
    if isinstance(data, (list, tuple)):
        return f"{len(data):,} rows"
    if hasattr(data, "nbytes"):  # torch tensors, numpy arrays
        return data_bytes(int(data.nbytes))
    if isinstance(data, dict) and any(hasattr(value, "nbytes") for value in data.values()):  # a safetensors dict
        return data_bytes(sum(int(value.nbytes) for value in data.values() if hasattr(value, "nbytes")))
    if isinstance(data, (str, bytes)):
        return data_bytes(len(data.encode() if isinstance(data, str) else data))
    if hasattr(data, "to_json"):  # plotly figures
        return data_bytes(len(data.to_json()))
    try:
        return data_bytes(len(json.dumps(data)))
    except (TypeError, ValueError):
        return None


def resume_nodes(pipeline: Pipeline, done: set[str]) -> list[str]:
    """The nodes not run whose inputs no other node not run makes: ``--from-nodes`` with them runs
    exactly the nodes not run (every dataset is persisted, so the rest is read from disk)."""
    remaining = [node for node in pipeline.nodes if node.name not in done]
    made = {output for node in remaining for output in node.outputs}
    return sorted(node.name for node in remaining if not made & set(node.inputs))


class NodeProgressHooks:
    """Kedro hooks; one instance per process (settings.HOOKS), reset when a run starts."""

    def __init__(self) -> None:
        self._pipeline = Pipeline([])
        self._started: dict[str, tuple[int, float]] = {}  # node name: (its place in the run, when it started)
        self._done: set[str] = set()
        self._run_started = perf_counter()

    def _position(self, node: Node) -> str:
        return f"[{self._started[node.name][0]}/{len(self._pipeline.nodes)}]"

    def _elapsed(self, node: Node) -> str:
        return duration(perf_counter() - self._started[node.name][1])

    @hook_impl
    def before_pipeline_run(self, pipeline: Pipeline) -> None:
        self._pipeline, self._started, self._done, self._run_started = pipeline, {}, set(), perf_counter()

    def _start(self, node: Node) -> None:
        if node.name not in self._started:
            self._started[node.name] = (len(self._started) + 1, perf_counter())
            logger.info("%s %s started", self._position(node), node.name)

    @hook_impl
    def before_dataset_loaded(self, node: Node) -> None:
        """A node starts with loading its inputs (Kedro calls before_node_run once they are loaded)."""
        self._start(node)

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self._start(node)

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        self._done.add(node.name)
        prefix = f"{node.namespace}." if node.namespace else ""
        sizes = {name.removeprefix(prefix): output_size(data) for name, data in outputs.items()}
        made = ", ".join(f"{name} {size}" for name, size in sizes.items() if size)
        made = f": {made}" if made else ""
        logger.info("%s %s done in %s%s", self._position(node), node.name, self._elapsed(node), made)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        self._start(node)  # when a hook before it failed
        took = self._elapsed(node)
        logger.error("%s %s failed after %s (%s)", self._position(node), node.name, took, type(error).__name__)

    @hook_impl
    def after_pipeline_run(self) -> None:
        logger.info("Run finished: %d nodes in %s", len(self._done), duration(perf_counter() - self._run_started))

    @hook_impl
    def on_pipeline_error(self) -> None:
        self.report_stop("failed")

    def report_stop(self, how: str) -> None:
        """One line naming the node that stopped the run and the nodes to resume from; the nodes not
        run, all of them, in the log file."""
        if not self._started:  # stopped before its first node: the same command runs it all
            return
        not_run = [node.name for node in self._pipeline.nodes if node.name not in self._done]
        if not not_run:
            return
        stopped = [name for name in self._started if name not in self._done]
        at = f"{stopped[-1]} {how}" if stopped else how
        listed = write_to_log_files(logger, logging.INFO, f"Nodes not run ({len(not_run)}): {', '.join(not_run)}")
        where = f" (listed in {', '.join(shown_path(path) for path in log_files())})" if listed else ""
        logger.warning(
            'Run stopped: %s; %d of %d nodes not run%s. To resume, add to the command: --from-nodes "%s"',
            at, len(not_run), len(self._pipeline.nodes), where, ",".join(resume_nodes(self._pipeline, self._done)),
        )  # fmt: skip
