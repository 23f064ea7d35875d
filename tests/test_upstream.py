"""A run that reads artifacts no run has made stops before its first node, naming the command that makes them."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from retraction_kedro.upstream import MissingUpstreamError, check_upstream, making_command, missing_inputs, nodes_to_run, producers
from tests.conftest import run_pipeline


def _step(*_):
    return None


def node(name: str, namespace: str, inputs: list[str], outputs: list[str]) -> Node:
    return Node(_step, [f"{namespace}.{i}" for i in inputs], [f"{namespace}.{o}" for o in outputs], name=name, namespace=namespace)


# Two stages over a truthfulness set and two testbeds: "build" makes what "probe" reads.
BUILD = Pipeline([node("questions", "truth", [], ["questions"]), node("hidden", "truth", ["questions"], ["hidden"]),
                  node("hidden", "city", [], ["hidden"]), node("hidden", "coin", [], ["hidden"])])  # fmt: skip
PROBE = Pipeline([node("train", "truth", ["hidden"], ["probes"]),
                  Node(_step, ["truth.probes", "city.hidden"], "city.scores", name="score", namespace="city"),
                  Node(_step, ["truth.probes", "coin.hidden"], "coin.scores", name="score", namespace="coin")])  # fmt: skip
REGISTERED = {"build": BUILD, "probe": PROBE, "__default__": BUILD + PROBE}


def catalog(present: set[str]) -> DataCatalog:
    names = {name for pipeline in REGISTERED.values() for name in pipeline.datasets()}
    return DataCatalog({name: MemoryDataset(data=1) if name in present else MemoryDataset() for name in names})


def command(pipeline: Pipeline, present: set[str]) -> str:
    made_by = producers(REGISTERED)
    cat = catalog(present)
    return making_command(nodes_to_run(missing_inputs(pipeline, cat, made_by), cat, made_by), REGISTERED, ["build", "probe"])


def test_the_command_names_the_stages_and_drops_namespaces_that_select_nothing_less():
    assert command(PROBE, present=set()) == "kedro run --pipelines build"  # every namespace of the stage is needed


def test_what_is_there_is_reused_and_only_the_namespaces_still_missing_are_named():
    assert command(PROBE, present={"truth.questions", "truth.hidden", "coin.hidden"}) == "kedro run --pipelines build --namespaces city"
    # the truthfulness set alone is missing: its namespace, in the default pipeline, selects exactly the nodes that make it
    only_city = PROBE.only_nodes_with_namespaces(["city"])
    assert command(only_city, present={"city.hidden"}) == "kedro run --namespaces truth"


def test_nothing_missing_means_no_error_and_a_missing_input_names_the_command_and_the_testbed_pipeline():
    present = {name for pipeline in REGISTERED.values() for name in pipeline.datasets()}
    check_upstream(PROBE, catalog(present), REGISTERED, ["build", "probe"], {})
    registered = {**REGISTERED, "testbed_city": (BUILD + PROBE).only_nodes_with_namespaces(["city", "truth"])}
    with pytest.raises(MissingUpstreamError) as error:
        check_upstream(PROBE.only_nodes_with_namespaces(["city"]), catalog({"city.hidden"}), registered, ["build", "probe"],
                       {"namespaces": ["city"], "runtime_params": {"model": {"name": "x"}}, "env": "local"})  # fmt: skip
    assert str(error.value) == (
        "This run reads truth.probes, which no run has made yet: run `kedro run --namespaces truth` first with this run's --params, "
        "or `kedro run --pipelines testbed_city` to build both"
    )


def test_probing_on_a_fresh_project_names_the_stages_that_make_its_inputs(kedro_project):
    with pytest.raises(MissingUpstreamError, match=r"which no run has made yet: run `kedro run --pipelines data_construction,activations,evaluation` first"):
        run_pipeline(kedro_project, "probing")


def test_a_dataset_that_fetches_its_file_when_loaded_is_not_missing(tmp_path):
    from retraction_kedro.sources import ReleasedContinuationDataset

    released = ReleasedContinuationDataset("wikidata", "test", model="Qwen/Qwen2.5-7B-Instruct", root=str(tmp_path))
    reads = Pipeline([Node(_step, "wikidata.continuation_test", "wikidata.hidden", name="capture", namespace="wikidata")])
    makes = Pipeline([Node(_step, "wikidata.free_questions", "wikidata.continuation_test", name="construct", namespace="wikidata")])
    catalog = DataCatalog({"wikidata.continuation_test": released})
    assert not released.exists()  # not downloaded yet: its first load fetches it (--env paper_released)
    assert missing_inputs(reads, catalog, producers({"construction": makes})) == []
