"""Wrapping a template pipeline in a namespace: registry entries and shared parameter groups."""

from __future__ import annotations

from kedro.pipeline import Pipeline


def in_namespace(template: Pipeline, namespace: str, inputs: dict[str, str] | None = None, parameters: dict[str, str] | None = None) -> Pipeline:
    """``template`` under ``namespace``: ``inputs`` map free datasets to other namespaces, ``parameters``
    map template parameters to registry entries; every other parameter group stays global
    (``params:model`` is the run's model in every namespace). Mappings the template does not use are
    ignored, so one mapping serves the templates of every source kind."""
    used = template.inputs()
    parameters = parameters or {}
    mapping = {name: parameters.get(name, name) for name in used if name.startswith("params:")}
    return Pipeline(template, namespace=namespace, inputs={k: v for k, v in (inputs or {}).items() if k in used}, parameters=mapping)
