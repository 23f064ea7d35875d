"""The project's conventions as checks on (registered pipelines, catalog, parameters).

Each check returns what breaks its convention, sorted (empty when it holds), so one check runs on the
real project and on a small broken one built in a test. Namespaces come from the testbed registry in
the parameters, as the pipeline registry and the config loader take them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import FINETUNED_PREFIX, Registry
from retraction_kedro.naming import model_slug

Pipelines = Mapping[str, Pipeline]

LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)
SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*\Z")
DATA_PATH = re.compile(r"(?:\A|/)data/(?P<layer>[^/]+)/(?P<rest>.+)\Z")

# Datasets and nodes outside every namespace, with the reason: none in this project.
BARE_NAMES: dict[str, str] = {}
# Files no model produces: their paths carry no model slug (layers 02-08 otherwise do).
MODEL_INDEPENDENT = {
    "source_manifest": "records which question files a namespace read, the same for every model",
    "verification_shots": "worked examples taken from the world data or gold answers, not from a model",
}
# Catalog templates are written for every namespace of their kind, the fine-tuned models' included.
# These combinations no pipeline uses, and why.
_CONSTRUCTION = "a fine-tuned model answers the base model's continuation sets; it builds none of its own"
FINETUNED_UNUSED = {
    "answer_samples": _CONSTRUCTION,
    "verified_answers": _CONSTRUCTION,
    "verification_shots": _CONSTRUCTION,
    "construction_summary": _CONSTRUCTION,
    "construction_metrics": _CONSTRUCTION,
    "source_manifest": "a fine-tuned model reads the question files of the base model's namespace",
    "model_spec": "every namespace of a fine-tuned model reads that model's one spec, finetuned_<testbed>.model_spec",
    **dict.fromkeys(("continuation_samples_test", "judged_samples_test", "decoding_report", "decoding_metrics"),
                    "decoding sensitivity (sampled against greedy) is measured on the base model only"),
}
# Used only when the study sets finetuned_interventions: generated so the flag needs no catalog change.
FINETUNED_INTERVENTIONS = (
    "steering_directions",
    "sweep_continuations",
    "judged_sweep_continuations",
    "sweep_continuations_rest",
    "judged_sweep_continuations_rest",
    "steering_sweep",
    "steering_choice",
    "steering_sweep_plot",
    "intervention_continuations",
    "judged_intervention_continuations",
    "intervention_report",
    "intervention_metrics",
    "intervention_plot",
)


def _nodes(pipelines: Pipelines) -> Iterator[Node]:
    for pipeline in pipelines.values():
        yield from pipeline.nodes


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _datasets(pipelines: Pipelines) -> set[str]:
    """Every dataset a node of a registered pipeline reads or writes (parameters aside)."""
    return {name for node in _nodes(pipelines) for name in (*node.inputs, *node.outputs) if not _is_parameter(name)}


def _entries(catalog: DataCatalog) -> set[str]:
    """The catalog's entries by name (its patterns aside)."""
    return {name for name in catalog if not _is_parameter(name)}


def _namespaces(parameters: Mapping[str, Any]) -> set[str]:
    return {name for names in Registry(parameters).namespaces().values() for name in names}


def _split(name: str) -> tuple[str, str]:
    namespace, _, leaf = name.rpartition(".")
    return namespace, leaf


def _persisted(catalog: DataCatalog, name: str) -> bool:
    return name in catalog and not str(catalog.get_type(name)).endswith("MemoryDataset")


def _config(catalog: DataCatalog, name: str) -> dict[str, Any]:
    return catalog.config_resolver.resolve_pattern(name)


def _dataset_class(type_name: str | None) -> type | None:
    """The class a catalog ``type`` names (kedro's own resolution), None when it names none."""
    from kedro.io.core import parse_dataset_definition

    try:
        return parse_dataset_definition({"type": type_name})[0] if type_name else None
    except Exception:  # noqa: BLE001 - an unresolvable type is no MLflow dataset
        return None


def _is_mlflow(type_name: str | None, metrics_only: bool = False) -> bool:
    """kedro-mlflow's datasets and the project's subclasses of them (recognized by class, not by name)."""
    from kedro_mlflow.io.metrics import MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset

    cls = _dataset_class(type_name)
    if cls is None:
        return False
    if metrics_only:
        return issubclass(cls, (MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset))
    return any(base.__module__.startswith("kedro_mlflow.") for base in cls.__mro__)


def _filepath(config: Mapping[str, Any]) -> str | None:
    """The file a dataset writes, also through a wrapper such as ``MlflowArtifactDataset``."""
    inner = config.get("dataset")
    return config.get("filepath") or (inner.get("filepath") if isinstance(inner, dict) else None)


def _files(pipelines: Pipelines, catalog: DataCatalog) -> dict[str, str]:
    """``{dataset: filepath}`` for the catalog's entries and every persisted dataset of the pipelines."""
    names = _entries(catalog) | {name for name in _datasets(pipelines) if _persisted(catalog, name)}
    paths = {name: _filepath(_config(catalog, name)) for name in names}
    return {name: path for name, path in paths.items() if path}


def unread_parameters(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Leaf parameter keys that no node reads: neither ``params:<key>`` nor ``params:<prefix>`` of it.

    No parameter is read only outside nodes: the registry groups the pipeline registry and the config
    loader read are node inputs too (``params:testbeds.<name>``, ``params:paper_data``)."""
    read = {
        name.removeprefix("params:") for node in _nodes(pipelines) for name in node.inputs if name.startswith("params:")
    }

    def leaves(value: Any, key: str) -> Iterator[str]:
        if isinstance(value, Mapping) and value:
            for child, item in value.items():
                yield from leaves(item, f"{key}.{child}" if key else str(child))
        else:
            yield key

    return sorted(key for key in leaves(parameters, "") if not any(key == r or key.startswith(f"{r}.") for r in read))


def unpersisted_outputs(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Node outputs with no catalog entry or only a MemoryDataset, and outputs another node reads that
    live only in an MLflow run's metrics (a rerun with ``--from-nodes`` starts another run)."""
    outputs = {name for node in _nodes(pipelines) for name in node.outputs}
    inputs = {name for node in _nodes(pipelines) for name in node.inputs}
    missing = {name for name in outputs if not _persisted(catalog, name)}
    in_mlflow = {name for name in outputs & inputs if _is_mlflow(catalog.get_type(name), metrics_only=True)}
    return sorted(missing | in_mlflow)


def unpersisted_free_inputs(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Inputs of a registered pipeline that no node of it produces, without a persisted catalog entry."""
    free = {name for pipeline in pipelines.values() for name in pipeline.inputs() if not _is_parameter(name)}
    return sorted(name for name in free if not _persisted(catalog, name))


def misnamed_datasets(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Dataset names, in the pipelines and the catalog (patterns with their placeholders filled), that
    are not ``<registered namespace>.<snake_case>`` nor a listed bare name."""
    namespaces = _namespaces(parameters)
    runtime = set(catalog.default_runtime_patterns)
    patterns = {re.sub(r"\{(\w+)\}", r"\1", p) for p in catalog.config_resolver.list_patterns() if p not in runtime}

    def well_named(name: str) -> bool:
        namespace, leaf = _split(name)
        return bool(SNAKE_CASE.match(leaf)) and (namespace in namespaces if namespace else name in BARE_NAMES)

    return sorted(name for name in _datasets(pipelines) | _entries(catalog) | patterns if not well_named(name))


def misplaced_files(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Files outside ``data/<layer>/``, or in layers 02-08 not under ``<model slug>/<namespace>/``
    (the model-independent files: under ``<namespace>/``; a nested namespace is one folder)."""
    slug = model_slug(parameters["model"]["name"])
    misplaced = []
    for name, path in _files(pipelines, catalog).items():
        match = DATA_PATH.search(path)
        if not match or match["layer"] not in LAYERS:
            misplaced.append(f"{name}: {path} is not in data/<layer>/ ({', '.join(LAYERS)})")
            continue
        if match["layer"] == LAYERS[0]:
            continue
        namespace, leaf = _split(name)
        folders = ([] if leaf in MODEL_INDEPENDENT else [slug]) + ([namespace] if namespace else [])
        parts = match["rest"].split("/")
        if parts[: len(folders)] != folders or len(parts) == len(folders):
            misplaced.append(f"{name}: {path} is not under data/{match['layer']}/{'/'.join(folders)}/")
    return sorted(misplaced)


def unversioned_artifacts(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Model-produced files (layers 02-08) that are not Kedro-versioned, so a run would overwrite the last
    one's. A file wrapped in an MLflow artifact is exempt: MLflow keeps one copy per run, and the two
    cannot be combined."""
    unversioned = []
    for name in _files(pipelines, catalog):
        config = _config(catalog, name)
        match = DATA_PATH.search(config.get("filepath") or "")
        if (
            match
            and match["layer"] != LAYERS[0]
            and _split(name)[1] not in MODEL_INDEPENDENT
            and not config.get("versioned")
        ):
            unversioned.append(name)
    return sorted(unversioned)


def shared_files(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Datasets that write the same file as another dataset."""
    by_path = defaultdict(list)
    for name, path in _files(pipelines, catalog).items():
        by_path[path].append(name)
    return sorted(f"{path}: {', '.join(sorted(names))}" for path, names in by_path.items() if len(names) > 1)


def mlflow_keys_outside_namespace(
    pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]
) -> list[str]:
    """MLflow metric prefixes/keys and artifact paths that do not start with their dataset's namespace,
    so two namespaces could overwrite each other's metrics in one run."""
    outside = []
    for name in _entries(catalog) | {name for name in _datasets(pipelines) if name in catalog}:
        config = _config(catalog, name)
        if not _is_mlflow(config.get("type")):
            continue
        namespace = _split(name)[0]
        for field in ("prefix", "key", "artifact_path"):
            value = config.get(field)
            if value is not None and not re.match(rf"{re.escape(namespace)}(\Z|[./])", value):
                outside.append(f"{name}: {field} {value!r} does not start with {namespace!r}")
    return sorted(outside)


def misnamed_nodes(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Nodes without an explicit name (Kedro makes one up), names not ``<registered namespace>.<snake_case>``,
    and names that stand for different nodes in two registered pipelines (Kedro checks one pipeline at a
    time, so ``--nodes`` would mean different work depending on ``--pipelines``)."""
    namespaces = _namespaces(parameters)
    problems, meaning = set(), defaultdict(set)
    for node in _nodes(pipelines):
        meaning[node.name].add((node.func, tuple(node.inputs), tuple(node.outputs)))
        if node._name is None:
            problems.add(f"{node.name}: no name")
        elif not SNAKE_CASE.match(node._name) or (
            node.namespace not in namespaces if node.namespace else node.name not in BARE_NAMES
        ):
            problems.add(f"{node.name}: not <registered namespace>.<snake_case>")
    problems |= {f"{name}: names {len(nodes)} different nodes" for name, nodes in meaning.items() if len(nodes) > 1}
    return sorted(problems)


def unused_catalog_entries(pipelines: Pipelines, catalog: DataCatalog, parameters: Mapping[str, Any]) -> list[str]:
    """Catalog entries (patterns aside) no registered pipeline reads or writes, except the generated
    fine-tuned combinations explained above; and explained combinations that a pipeline does use."""
    registry = Registry(parameters)
    explained = {}
    for name in _entries(catalog):
        namespace, leaf = _split(name)
        model = namespace.split(".")[0]
        trained_on = registry.testbeds.get(model.removeprefix(FINETUNED_PREFIX))
        if not model.startswith(FINETUNED_PREFIX) or namespace == model or trained_on is None:
            continue
        study = trained_on.study
        if leaf in FINETUNED_UNUSED:
            explained[name] = FINETUNED_UNUSED[leaf]
        elif leaf in FINETUNED_INTERVENTIONS and not registry.studies_parameters[study].finetuned_interventions:
            explained[name] = f"study {study!r} does not set finetuned_interventions"
    used = _datasets(pipelines)
    unused = [f"{name}: unused" for name in _entries(catalog) - used - set(explained)]
    stale = [f"{name}: used, though explained as unused ({explained[name]})" for name in used & set(explained)]
    return sorted(unused + stale)


CHECKS = (
    unread_parameters,
    unpersisted_outputs,
    unpersisted_free_inputs,
    misnamed_datasets,
    misplaced_files,
    unversioned_artifacts,
    shared_files,
    mlflow_keys_outside_namespace,
    misnamed_nodes,
    unused_catalog_entries,
)
