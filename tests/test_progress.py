"""One line per node start and end, with time and output size; when a run stops, the nodes to resume from."""

from __future__ import annotations

import logging
import re

import polars as pl
import pytest
import torch
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from retraction_kedro.progress import NodeProgressHooks, output_size, resume_nodes


def test_output_sizes_are_rows_of_tables_and_bytes_of_everything_else():
    assert output_size(pl.DataFrame({"a": range(1234)})) == "1,234 rows"
    assert output_size([{"a": 1}, {"a": 2}]) == "2 rows"
    assert output_size(torch.zeros(1000, dtype=torch.float32)) == "4.0 kB"
    assert output_size({"hidden": torch.zeros(2, 3, 500), "layers": torch.arange(3)}) == "12.0 kB"  # 12,000 + 24 bytes
    assert output_size({"accuracy": 0.5}) == "17 B"  # as JSON
    assert output_size(object()) is None


def _make(value):
    return value


def _fail(value):
    raise ValueError("broken")


def _interrupt(value):
    raise KeyboardInterrupt


# first -> second -> third, and an independent branch: aside -> beside
def pipeline(second) -> Pipeline:
    return Pipeline([
        Node(_make, "params:x", "a", name="first"), Node(second, "a", "b", name="second"), Node(_make, "b", "c", name="third"),
        Node(_make, "params:x", "d", name="aside"), Node(_make, "d", "e", name="beside"),
    ])  # fmt: skip


def test_the_nodes_to_resume_from_are_those_not_run_whose_inputs_are_not_made_by_another_not_run():
    assert resume_nodes(pipeline(_make), done={"first", "aside"}) == ["beside", "second"]
    assert resume_nodes(pipeline(_make), done={"first"}) == ["aside", "second"]


def run(second, caplog) -> tuple[NodeProgressHooks, list[str]]:
    """The pipeline through Kedro's runner with the hooks registered, as a session registers them."""
    hooks, manager = NodeProgressHooks(), _create_hook_manager()
    manager.register(hooks)
    pipe = pipeline(second)
    catalog = DataCatalog()
    catalog["params:x"] = 1
    manager.hook.before_pipeline_run(run_params={}, pipeline=pipe, catalog=catalog)
    with caplog.at_level(logging.INFO, logger="retraction_kedro.progress"):
        try:
            SequentialRunner().run(pipe, catalog, manager)
        except ValueError as error:  # what the session does with a failed run
            manager.hook.on_pipeline_error(error=error, run_params={}, pipeline=pipe, catalog=catalog)
        except KeyboardInterrupt:  # what the command does with an interrupted one
            hooks.report_stop("interrupted")
    return hooks, [record.getMessage() for record in caplog.records if record.name == "retraction_kedro.progress"]


def test_a_run_shows_one_line_when_each_node_starts_and_one_when_it_ends(caplog):
    _, lines = run(_make, caplog)
    for name in ("first", "second", "third", "aside", "beside"):
        assert len([line for line in lines if re.fullmatch(rf"\[\d/5\] {name} started", line)]) == 1, lines
        assert len([line for line in lines if re.fullmatch(rf"\[\d/5\] {name} done in \d+\.\d s: \w 1 B", line)]) == 1, lines


@pytest.mark.parametrize(("second", "how"), [(_fail, "failed"), (_interrupt, "interrupted")])
def test_a_stopped_run_names_the_node_that_stopped_it_and_the_nodes_to_resume_from(second, how, caplog):
    _, lines = run(second, caplog)
    done = {line.split()[1] for line in lines if " done in " in line}
    assert "second" not in done and "third" not in done
    stop = [line for line in lines if line.startswith("Run stopped")]
    assert len(stop) == 1, lines
    assert stop[0].startswith(f"Run stopped: second {how}; {5 - len(done)} of 5 nodes not run")
    from_nodes = re.search(r'--from-nodes "([^"]+)"$', stop[0]).group(1).split(",")
    assert "second" in from_nodes and from_nodes == resume_nodes(pipeline(second), done)
