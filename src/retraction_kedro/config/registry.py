"""The testbed registry (conf/base/parameters_testbeds.yml): which studies, testbeds and truthfulness
sets exist, and the namespaces they give pipelines and catalog entries.

Kedro builds pipelines before it reads parameters, so the pipeline registry and the config loader
read this file themselves; nodes read the same entries as parameters (``params:testbeds.<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .parameters import ParameterError, StudyParameters, TestbedParameters, TruthfulnessParameters

FINETUNED_PREFIX = "finetuned_"
STUDY_SUFFIX = "_study"
GROUPS = ("studies", "truthfulness_sets", "testbeds")


class RegistryError(ParameterError):
    """The registry contradicts itself (a testbed names an unknown study, two default studies, ...)."""


@dataclass(frozen=True)
class Study:
    name: str
    parameters: StudyParameters
    testbeds: tuple[str, ...]
    truthfulness_sets: tuple[str, ...]
    finetuned_models: tuple[str, ...]  # "finetuned_<testbed>" for every testbed of the study with finetune: true

    @property
    def namespace(self) -> str:
        """Namespace of the study-wide outputs (the SFT comparison, the report)."""
        return f"{self.name}{STUDY_SUFFIX}"

    @property
    def pipeline_suffix(self) -> str:
        """``""`` for the default study (`kedro run --pipelines probing`), ``_<study>`` for the others."""
        return "" if self.parameters.default else f"_{self.name}"


class Registry:
    """Parsed, cross-checked registry entries; every namespace the project uses comes from here."""

    def __init__(self, parameters: Mapping[str, Any]):
        missing = [group for group in GROUPS if group not in parameters]
        if missing:
            raise RegistryError(f"Parameter {missing[0]}: the testbed registry (conf/base/parameters_testbeds.yml) has no {missing[0]!r} group")
        self.studies_parameters = {name: StudyParameters.parse(raw, f"studies.{name}") for name, raw in parameters["studies"].items()}
        self.truthfulness_sets = {
            name: TruthfulnessParameters.parse(raw, f"truthfulness_sets.{name}") for name, raw in parameters["truthfulness_sets"].items()
        }
        self.testbeds = {name: TestbedParameters.parse(raw, f"testbeds.{name}") for name, raw in parameters["testbeds"].items()}
        self._check()

    def _check(self) -> None:
        names = [*self.studies_parameters, *self.truthfulness_sets, *self.testbeds]
        for name in names:
            if not name.isidentifier() or name != name.lower() or name.startswith(FINETUNED_PREFIX) or name.endswith(STUDY_SUFFIX):
                raise RegistryError(
                    f"Parameter registry name {name!r}: use lower-case letters, digits and underscores, "
                    f"not starting with {FINETUNED_PREFIX!r} nor ending with {STUDY_SUFFIX!r}"
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RegistryError(f"Parameter registry name {duplicates[0]!r} is used twice (studies, truthfulness sets and testbeds share namespaces)")
        defaults = [name for name, study in self.studies_parameters.items() if study.default]
        if len(defaults) != 1:
            raise RegistryError(f"Parameter studies: exactly one study needs default: true (found {defaults or 'none'})")
        for name, testbed in self.testbeds.items():
            if testbed.study not in self.studies_parameters:
                raise RegistryError(f"Parameter testbeds.{name}.study: unknown study {testbed.study!r}; known: {sorted(self.studies_parameters)}")
            if testbed.truthfulness not in self.truthfulness_sets:
                raise RegistryError(
                    f"Parameter testbeds.{name}.truthfulness: unknown truthfulness set {testbed.truthfulness!r}; "
                    f"known: {sorted(self.truthfulness_sets)}"
                )
        empty = [name for name in self.studies_parameters if not self.study(name).testbeds]
        if empty:
            raise RegistryError(f"Parameter studies.{empty[0]}: no testbed belongs to this study")

    @classmethod
    def load(cls, project_path: str | Path | None = None, env: str | None = None) -> "Registry":
        """The registry of the Kedro project at ``project_path`` (found from the working directory by default)."""
        from .loader import project_config_loader

        return cls(project_config_loader(project_path, env)["parameters"])

    def study(self, name: str) -> Study:
        testbeds = tuple(t for t, entry in self.testbeds.items() if entry.study == name)
        truthfulness = tuple(dict.fromkeys(self.testbeds[t].truthfulness for t in testbeds))
        finetuned = tuple(f"{FINETUNED_PREFIX}{t}" for t in testbeds if self.testbeds[t].finetune)
        return Study(name, self.studies_parameters[name], testbeds, truthfulness, finetuned)

    @cached_property
    def studies(self) -> tuple[Study, ...]:
        return tuple(self.study(name) for name in self.studies_parameters)

    @property
    def default_study(self) -> Study:
        return next(study for study in self.studies if study.parameters.default)

    def namespaces(self) -> dict[str, tuple[str, ...]]:
        """Every namespace, by the catalog placeholder that stands for its kind.

        ``testbed`` and ``truthfulness`` include the fine-tuned models' evaluations
        (``finetuned_geo_city.geo_city``); ``namespace`` is either of those.
        """
        testbeds, truthfulness, finetuned = list(self.testbeds), list(self.truthfulness_sets), []
        for study in self.studies:
            for model in study.finetuned_models:
                finetuned.append(model)
                testbeds += [f"{model}.{t}" for t in study.testbeds]
                truthfulness += [f"{model}.{t}" for t in study.truthfulness_sets]
        return {
            "testbed": tuple(testbeds),
            "truthfulness": tuple(truthfulness),
            "namespace": tuple(testbeds + truthfulness),
            "finetuned": tuple(finetuned),
            "study": tuple(study.namespace for study in self.studies),
        }
