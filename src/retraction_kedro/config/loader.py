"""The project's config loader: catalog entries for the registry's namespaces and question sources.

Catalog templates name their namespace by kind (``"{testbed}.continuation_{split}"``). This loader
writes one entry per registered namespace of that kind, so a namespace the registry does not
know has no entry and loading or saving it is an error, instead of a silent fallback path. Each
testbed's and truthfulness set's question files get entries from its registry ``source``, and a
testbed's labelled judge-validation file from its ``judge_validation``.
Entries written out in the catalog (e.g. by ``conf/paper_released``) win over the templates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

from .parameters import QuestionSource

QUESTIONS = ("question", "messages", "answers")
TRUTHFULNESS = ("question", "answer", "label", "messages")
JUDGE_VALIDATION_OUTPUTS = ("judge_validation_report", "judge_validation_metrics")
LABELLED = ("id", "question", "name", "response", "label")  # a judge-validation row: a continuation labelled by reading
EMBEDDED_RAW = "data/01_raw/embedded"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _substitute(value: Any, placeholder: str, name: str) -> Any:
    if isinstance(value, str):
        return value.replace(placeholder, name)
    if isinstance(value, dict):
        return {key: _substitute(item, placeholder, name) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, placeholder, name) for item in value]
    return value


def expand_namespaces(catalog: dict[str, Any], namespaces: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """One entry per registered namespace for each template whose name starts with a namespace kind."""
    expanded = {key: value for key, value in catalog.items() if _namespace_kind(key, namespaces) is None}
    for key, value in catalog.items():
        kind = _namespace_kind(key, namespaces)
        for name in namespaces.get(kind, ()) if kind else ():
            expanded.setdefault(key.replace(f"{{{kind}}}", name), _substitute(value, f"{{{kind}}}", name))
    return expanded


def _namespace_kind(key: str, namespaces: dict[str, tuple[str, ...]]) -> str | None:
    match = _PLACEHOLDER.match(key)
    return match.group(1) if match and match.group(1) in namespaces else None


def source_entries(name: str, source: QuestionSource, table: str, required: tuple[str, ...], paper_root: str) -> dict[str, Any]:
    """``<name>.<table>_train`` / ``_test`` for a registry source (the embedded builders write theirs)."""
    from retraction_kedro.sources.paper import paper_file

    entries = {}
    for split in ("train", "test"):
        if source.embedded is not None:
            path, fields = f"{EMBEDDED_RAW}/{name}_{split}.jsonl", required
        elif source.files is not None:
            path, fields = source.files[split], required
        else:
            released = paper_file(source.paper[split])
            path, fields = f"{paper_root.rstrip('/')}/{released.path}", tuple(dict.fromkeys((*released.required_fields, *required)))
        entries[f"{name}.{table}_{split}"] = {"type": "retraction_kedro.datasets.JSONLDataset", "filepath": path, "required_fields": list(fields)}
    return entries


class ProjectConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose catalog holds the registry's namespaces and question sources."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        if key != "catalog":
            return config
        from .registry import Registry

        parameters = super().__getitem__("parameters")
        registry = Registry(parameters)
        paper_root = parameters.get("paper_data", {}).get("root", "data/01_raw/paper")
        generated: dict[str, Any] = {}
        for name, testbed in registry.testbeds.items():
            generated |= source_entries(name, testbed.source, "free_questions", (*QUESTIONS, testbed.constraint_field), paper_root)
            if testbed.judge_validation is not None:
                generated[f"{name}.judge_validation_set"] = {
                    "type": "retraction_kedro.datasets.JSONLDataset", "filepath": testbed.judge_validation,
                    "required_fields": [*LABELLED, testbed.constraint_field],
                }  # fmt: skip
        for name, truthfulness in registry.truthfulness_sets.items():
            generated |= source_entries(name, truthfulness.source, "questions", TRUTHFULNESS, paper_root)
        catalog = expand_namespaces({**generated, **config}, registry.namespaces())
        unvalidated = {name for name, testbed in registry.testbeds.items() if testbed.judge_validation is None}
        return {key: entry for key, entry in catalog.items() if not _judge_validation_output(key, unvalidated)}


def _judge_validation_output(key: str, unvalidated: set[str]) -> bool:
    """An entry the evaluation's ``validate_judge`` node would write, where it does not run: a testbed without a
    labelled set, or a fine-tuned model's namespace (``<model>.<testbed>``: the judge is validated once)."""
    namespace, _, leaf = key.rpartition(".")
    return leaf in JUDGE_VALIDATION_OUTPUTS and ("." in namespace or namespace in unvalidated)


def project_config_loader(project_path: str | Path | None = None, env: str | None = None) -> ProjectConfigLoader:
    """The config loader a Kedro session of this project uses, for code that runs before or outside one."""
    from kedro.utils import find_kedro_project

    from retraction_kedro.settings import CONFIG_LOADER_ARGS

    root = Path(project_path) if project_path else find_kedro_project(Path.cwd())
    if root is None:
        raise FileNotFoundError(f"No Kedro project (pyproject.toml with [tool.kedro]) in {Path.cwd()} or its parents")
    return ProjectConfigLoader(conf_source=str(Path(root) / "conf"), env=env or os.environ.get("KEDRO_ENV"), **CONFIG_LOADER_ARGS)
