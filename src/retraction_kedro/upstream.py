"""Artifacts a run reads but another pipeline makes, checked before the first node.

A run that lacks one (``kedro run --pipelines probing`` on a fresh clone, ``--namespaces <testbed>``
before its truthfulness set was built, ``--from-nodes``) stops in one line naming the command that
makes what is missing, instead of failing at the first load deep in a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kedro.pipeline import Node, Pipeline


class MissingUpstreamError(RuntimeError):
    """The run reads artifacts no earlier run has made; the message is the command that makes them."""


def producers(registered: Mapping[str, Pipeline]) -> dict[str, Node]:
    """The node that writes each dataset, over every registered pipeline."""
    return {output: node for pipeline in registered.values() for node in pipeline.nodes for output in node.outputs}


def _missing(name: str, catalog: Any) -> bool:
    """Not there, and not fetched when loaded (the paper's released sets, under ``--env paper_released``)."""
    return not catalog.exists(name) and not getattr(catalog.get(name), "fetched_on_load", False)


def missing_inputs(pipeline: Pipeline, catalog: Any, made_by: Mapping[str, Node]) -> list[str]:
    """Free inputs of ``pipeline`` that a node of another pipeline makes and that are not there.

    Inputs no node makes (question files, the paper's downloads) are the sources' business: their
    nodes report them naming file and row."""
    return sorted(name for name in pipeline.inputs() if name in made_by and _missing(name, catalog))


def nodes_to_run(missing: Iterable[str], catalog: Any, made_by: Mapping[str, Node]) -> set[Node]:
    """The nodes that make ``missing``, and upstream of them the makers of whatever else is missing."""
    needed: set[Node] = set()
    todo, seen = list(missing), set(missing)
    while todo:
        node = made_by[todo.pop()]
        if node in needed:
            continue
        needed.add(node)
        for name in node.inputs:
            if name in made_by and name not in seen and _missing(name, catalog):
                seen.add(name)
                todo.append(name)
    return needed


def _outermost(namespaces: Iterable[str]) -> list[str]:
    """Namespaces without those already inside another (``--namespaces a`` selects ``a.b`` too)."""
    names = sorted(set(namespaces))
    return [n for n in names if not any(n.startswith(f"{other}.") for other in names if other != n)]


def _selected(pipeline: Pipeline, namespaces: Sequence[str]) -> set[Node]:
    try:
        return set(pipeline.only_nodes_with_namespaces(list(namespaces)).nodes)
    except ValueError:  # a namespace with no node in this pipeline
        return set()


def making_command(needed: set[Node], registered: Mapping[str, Pipeline], stages: Sequence[str]) -> str:
    """The shortest ``kedro run`` that runs every node of ``needed``: the stage pipelines that hold them,
    cut to their namespaces unless the stages alone, or the namespaces alone, select the same nodes."""
    pipelines = [name for name in stages if name in registered and needed & set(registered[name].nodes)]
    if not pipelines or needed - set().union(*(registered[name].nodes for name in pipelines)):
        pipelines = ["__default__"]
    combined = sum((registered[name] for name in pipelines), Pipeline([]))
    by_stage = f"--pipelines {','.join(pipelines)}" if pipelines != ["__default__"] else ""
    if any(node.namespace is None for node in needed):
        return f"kedro run {by_stage}".strip()
    namespaces = _outermost(node.namespace for node in needed)
    by_namespace = f"--namespaces {','.join(namespaces)}"
    chosen = _selected(combined, namespaces)
    if chosen == set(combined.nodes):
        return f"kedro run {by_stage}".strip()
    if "__default__" in registered and _selected(registered["__default__"], namespaces) == chosen:
        return f"kedro run {by_namespace}"
    return f"kedro run {by_stage} {by_namespace}".strip()


def check_upstream(
    pipeline: Pipeline,
    catalog: Any,
    registered: Mapping[str, Pipeline],
    stages: Sequence[str],
    run_params: Mapping[str, Any],
    testbed_prefix: str = "testbed_",
) -> None:
    """Raise :class:`MissingUpstreamError` when ``pipeline`` reads an artifact no run has made.

    ``stages``: the stage pipelines' names, in run order; ``testbed_prefix`` names the pipelines of one
    testbed with its truthfulness set, offered when the run named that testbed's namespace."""
    made_by = producers(registered)
    missing = missing_inputs(pipeline, catalog, made_by)
    if not missing:
        return
    needed = nodes_to_run(missing, catalog, made_by)
    command = making_command(needed, registered, stages)
    repeated = []
    if run_params.get("env") not in (None, "local"):
        repeated.append("--env")
    if run_params.get("runtime_params"):
        repeated.append("--params")
    # artifacts are kept per environment and model: the command must make this run's
    same = f" with this run's {' and '.join(repeated)}" if repeated else ""
    others = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    alternatives = [
        f"kedro run --pipelines {name}"
        for name in (f"{testbed_prefix}{ns}" for ns in run_params.get("namespaces") or ())
        if name in registered and needed <= set(registered[name].nodes)
    ]
    alternative = f", or `{alternatives[0]}` to build both" if alternatives else ""
    raise MissingUpstreamError(
        f"This run reads {missing[0]}{others}, which no run has made yet: run `{command}` first{same}{alternative}"
    )
