"""Convention tests (tests/conventions.py) on the real project, loaded once as Kedro loads it, and on a
small project built here, clean and then with one violation planted per test, which its check must
report and nothing else."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from kedro.framework.project import pipelines as registered_pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline

from retraction_kedro.config import Registry
from retraction_kedro.pipeline_registry import register_pipelines
from tests.conftest import PROJECT_ROOT
from tests.conventions import (
    CHECKS,
    misnamed_datasets,
    misnamed_nodes,
    misplaced_files,
    mlflow_keys_outside_namespace,
    shared_files,
    unpersisted_free_inputs,
    unpersisted_outputs,
    unread_parameters,
    unused_catalog_entries,
    unversioned_artifacts,
)

# ---------------------------------------------------------------- the real project


@dataclass(frozen=True)
class Project:
    pipelines: dict[str, Pipeline]
    catalog: DataCatalog
    parameters: dict[str, Any]

    def __iter__(self):
        return iter((self.pipelines, self.catalog, self.parameters))


@pytest.fixture(scope="session")
def project() -> Project:
    """Pipelines, catalog and parameters as `kedro run` sees them (conf/base, conf/local)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)  # the pipeline registry finds the project from the working directory
        bootstrap_project(PROJECT_ROOT)
        with KedroSession.create(project_path=PROJECT_ROOT) as session:
            context = session.load_context()
            return Project(dict(registered_pipelines), context.catalog, context.params)


@pytest.fixture(scope="session")
def project_steering_finetuned_models(project) -> Project:
    """The same project with every study's ``finetuned_interventions`` on: more pipelines, the same catalog."""
    parameters = copy.deepcopy(project.parameters)
    for study in parameters["studies"].values():
        study["finetuned_interventions"] = True
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Registry, "load", classmethod(lambda cls, *args, **kwargs: cls(parameters)))
        return Project(register_pipelines(), project.catalog, parameters)


@pytest.mark.parametrize("variant", ["project", "project_steering_finetuned_models"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_project_follows_convention(check, variant, request):
    assert check(*request.getfixturevalue(variant)) == []


# ---------------------------------------------------------------- a small project to break

SLUG = "org--tiny-lm"
REPORT = f"data/08_reporting/{SLUG}/toy_city/retraction.json"


def _never_run(*_: Any) -> None:
    raise AssertionError("the convention checks never run a node")


def toy_parameters() -> dict[str, Any]:
    """One study, one testbed (fine-tuned: namespaces finetuned_toy_city.toy_city, ...), one truthfulness set."""
    verification = {
        "system": "Reply with the name only.",
        "template": "Which country is {name} in?",
        "response_field": "country_response",
    }
    testbed = {
        "study": "toy",
        "truthfulness": "toy_truth",
        "source": {"embedded": "cities"},
        "constraint_field": "country",
        "finetune": True,
        "verification": verification,
    }
    return {
        "model": {"name": "Org/Tiny-LM"},
        "probing": {"epochs": 3},
        "studies": {"toy": {"default": True, "finetuned_interventions": False}},
        "truthfulness_sets": {"toy_truth": {"source": {"embedded": "facts"}}},
        "testbeds": {"toy_city": testbed},
    }


def toy_nodes() -> list[Node]:
    return [
        Node(
            _never_run,
            ["toy_truth.questions_train", "params:probing", "params:truthfulness_sets.toy_truth"],
            "toy_truth.probes",
            name="train_probes",
            namespace="toy_truth",
        ),
        Node(
            _never_run,
            "params:testbeds.toy_city",
            "toy_city.verification_shots",
            name="pick_shots",
            namespace="toy_city",
        ),
        Node(
            _never_run,
            ["toy_city.continuation_test", "toy_truth.probes", "toy_city.verification_shots", "params:model"],
            ["toy_city.retraction_report", "toy_city.retraction_metrics"],
            name="score",
            namespace="toy_city",
        ),
        Node(
            _never_run,
            ["toy_city.retraction_report", "params:studies.toy"],
            ["toy_study.study_report_html", "toy_study.study_report_mlflow"],
            name="build_report",
            namespace="toy_study",
        ),
    ]


def toy_catalog() -> dict[str, dict[str, Any]]:
    def file(path: str, versioned: bool = True) -> dict[str, Any]:
        return {"type": "json.JSONDataset", "filepath": path} | ({"versioned": True} if versioned else {})

    return {
        "toy_truth.questions_train": file("data/01_raw/toy_truth/questions_train.jsonl", versioned=False),
        "toy_city.continuation_{split}": file(f"data/03_primary/{SLUG}/toy_city/continuation_{{split}}.jsonl"),
        "toy_truth.probes": file(f"data/06_models/{SLUG}/toy_truth/probes.json"),
        "toy_city.verification_shots": file("data/02_intermediate/toy_city/verification_shots.json", versioned=False),
        "toy_city.retraction_report": file(REPORT),
        "toy_city.retraction_metrics": {
            "type": "retraction_kedro.datasets.MlflowMetricsHistoryBatchDataset",  # the catalog's own metrics type
            "prefix": "toy_city",
        },
        "toy_study.study_report_html": file(f"data/08_reporting/{SLUG}/toy_study/study_report.html"),
        "toy_study.study_report_mlflow": {
            "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
            "artifact_path": "toy_study",
            "dataset": {
                "type": "text.TextDataset",
                "filepath": f"data/08_reporting/{SLUG}/toy_study/mlflow/study_report.html",
            },
        },
        # generated for the fine-tuned model's namespace, explained as unused
        "finetuned_toy_city.toy_city.answer_samples": file(
            f"data/02_intermediate/{SLUG}/finetuned_toy_city.toy_city/answer_samples.jsonl"
        ),
        "finetuned_toy_city.toy_city.steering_sweep": file(
            f"data/08_reporting/{SLUG}/finetuned_toy_city.toy_city/steering_sweep.jsonl"
        ),
    }


@dataclass
class Toy:
    """Registered pipelines ``__default__`` (every node) and ``probing`` (the first), catalog config, parameters."""

    nodes: list[Node] = field(default_factory=toy_nodes)
    probing: list[Node] | None = None
    catalog: dict[str, dict[str, Any]] = field(default_factory=toy_catalog)
    parameters: dict[str, Any] = field(default_factory=toy_parameters)

    def __iter__(self):
        pipelines = {"__default__": Pipeline(self.nodes), "probing": Pipeline(self.probing or self.nodes[:1])}
        return iter((pipelines, DataCatalog.from_config(self.catalog), self.parameters))


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_the_small_project_follows_every_convention(check):
    assert check(*Toy()) == []


def test_a_parameter_no_node_reads_is_reported():
    toy = Toy()
    toy.parameters["probing_extra"] = {"seed": 0}  # `params:probing` is not a prefix of it at a dot boundary
    assert unread_parameters(*toy) == ["probing_extra.seed"]


def test_an_output_without_catalog_entry_is_reported():
    toy = Toy()
    toy.nodes.append(
        Node(_never_run, "toy_city.retraction_report", "toy_city.ranking", name="rank", namespace="toy_city")
    )
    assert unpersisted_outputs(*toy) == ["toy_city.ranking"]


def test_an_output_in_memory_is_reported():
    toy = Toy()
    toy.catalog["toy_truth.probes"] = {"type": "MemoryDataset"}
    assert unpersisted_outputs(*toy) == ["toy_truth.probes"]


def test_an_mlflow_metric_another_node_reads_is_reported():
    toy = Toy()
    toy.nodes[3] = Node(
        _never_run,
        ["toy_city.retraction_report", "toy_city.retraction_metrics", "params:studies.toy"],
        ["toy_study.study_report_html", "toy_study.study_report_mlflow"],
        name="build_report",
        namespace="toy_study",
    )
    assert unpersisted_outputs(*toy) == ["toy_city.retraction_metrics"]


def test_a_free_input_without_catalog_entry_is_reported():
    toy = Toy()
    del toy.catalog["toy_truth.questions_train"]
    assert unpersisted_free_inputs(*toy) == ["toy_truth.questions_train"]


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("toy_town.report", "toy_town.report"),  # no such namespace
        ("toy_city.RetractionReport", "toy_city.RetractionReport"),
        ("report", "report"),  # a bare name not listed
        ("toy_city.Continuation_{split}", "toy_city.Continuation_split"),  # a pattern
    ],
)
def test_a_dataset_name_off_the_scheme_is_reported(entry, expected):
    toy = Toy()
    toy.catalog[entry] = {
        "type": "json.JSONDataset",
        "filepath": f"data/08_reporting/{SLUG}/toy_city/extra.json",
        "versioned": True,
    }
    assert misnamed_datasets(*toy) == [expected]


def test_a_dataset_name_in_a_node_off_the_scheme_is_reported():
    toy = Toy()
    toy.nodes.append(
        Node(_never_run, "toy_city.retraction_report", "toy_city.Ranking", name="rank", namespace="toy_city")
    )
    assert misnamed_datasets(*toy) == ["toy_city.Ranking"]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("data/06_models/toy_truth/probes.json", f"is not under data/06_models/{SLUG}/toy_truth/"),  # no model slug
        (
            f"data/06_models/{SLUG}/toy_city/probes.json",
            f"is not under data/06_models/{SLUG}/toy_truth/",
        ),  # another namespace
        (f"data/06_models/{SLUG}/toy_truth", f"is not under data/06_models/{SLUG}/toy_truth/"),  # the folder itself
        (f"data/09_extra/{SLUG}/toy_truth/probes.json", "is not in data/<layer>/"),
        (f"models/{SLUG}/toy_truth/probes.json", "is not in data/<layer>/"),
    ],
)
def test_a_file_off_the_layout_is_reported(path, expected):
    toy = Toy()
    toy.catalog["toy_truth.probes"]["filepath"] = path
    (violation,) = misplaced_files(*toy)
    assert violation.startswith(f"toy_truth.probes: {path} {expected}")


def test_a_file_inside_an_mlflow_artifact_off_the_layout_is_reported():
    toy = Toy()
    path = "data/08_reporting/toy_study/study_report.html"  # no model slug
    toy.catalog["toy_study.study_report_mlflow"]["dataset"]["filepath"] = path
    assert misplaced_files(*toy) == [
        f"toy_study.study_report_mlflow: {path} is not under data/08_reporting/{SLUG}/toy_study/"
    ]


def test_an_unversioned_model_artifact_is_reported():
    toy = Toy()
    del toy.catalog["toy_truth.probes"]["versioned"]
    assert unversioned_artifacts(*toy) == ["toy_truth.probes"]


def test_two_datasets_writing_one_file_are_reported():
    toy = Toy()
    toy.catalog["toy_study.study_report_html"]["filepath"] = REPORT
    assert shared_files(*toy) == [f"{REPORT}: toy_city.retraction_report, toy_study.study_report_html"]


@pytest.mark.parametrize("field_, value", [("prefix", "retraction"), ("prefix", "toy_city_extra")])
def test_an_mlflow_key_outside_its_namespace_is_reported(field_, value):
    toy = Toy()
    toy.catalog["toy_city.retraction_metrics"][field_] = value
    assert mlflow_keys_outside_namespace(*toy) == [
        f"toy_city.retraction_metrics: {field_} {value!r} does not start with 'toy_city'"
    ]


def test_an_mlflow_artifact_path_outside_its_namespace_is_reported():
    toy = Toy()
    toy.catalog["toy_study.study_report_mlflow"]["artifact_path"] = "reports"
    assert mlflow_keys_outside_namespace(*toy) == [
        "toy_study.study_report_mlflow: artifact_path 'reports' does not start with 'toy_study'"
    ]


def test_a_node_without_name_is_reported():
    toy = Toy()
    unnamed = Node(_never_run, "toy_city.retraction_report", "toy_city.ranking", namespace="toy_city")
    toy.nodes.append(unnamed)
    assert misnamed_nodes(*toy) == [f"{unnamed.name}: no name"]


@pytest.mark.parametrize("name, namespace", [("Rank", "toy_city"), ("rank", "toy_town"), ("rank", None)])
def test_a_node_name_off_the_scheme_is_reported(name, namespace):
    toy = Toy()
    node = Node(_never_run, "toy_city.retraction_report", "toy_city.ranking", name=name, namespace=namespace)
    toy.nodes.append(node)
    assert misnamed_nodes(*toy) == [f"{node.name}: not <registered namespace>.<snake_case>"]


def test_a_node_name_meaning_two_nodes_across_pipelines_is_reported():
    toy = Toy()
    # Kedro accepts each pipeline alone; `--nodes toy_truth.train_probes` would depend on `--pipelines`.
    toy.probing = [
        Node(
            _never_run,
            ["toy_truth.questions_train", "params:probing"],
            "toy_truth.probes",
            name="train_probes",
            namespace="toy_truth",
        )
    ]
    assert misnamed_nodes(*toy) == ["toy_truth.train_probes: names 2 different nodes"]


def test_an_unused_catalog_entry_is_reported():
    toy = Toy()
    toy.catalog["toy_city.old_report"] = {
        "type": "json.JSONDataset",
        "filepath": f"data/08_reporting/{SLUG}/toy_city/old.json",
        "versioned": True,
    }
    assert unused_catalog_entries(*toy) == ["toy_city.old_report: unused"]


def test_an_unused_finetuned_intervention_entry_is_reported_once_the_study_steers_finetuned_models():
    toy = Toy()
    toy.parameters["studies"]["toy"]["finetuned_interventions"] = True
    assert unused_catalog_entries(*toy) == ["finetuned_toy_city.toy_city.steering_sweep: unused"]


def test_an_entry_explained_as_unused_that_a_node_uses_is_reported():
    toy = Toy()
    toy.nodes.append(
        Node(
            _never_run,
            "toy_city.retraction_report",
            "finetuned_toy_city.toy_city.answer_samples",
            name="sample",
            namespace="finetuned_toy_city.toy_city",
        )
    )
    (violation,) = unused_catalog_entries(*toy)
    assert violation.startswith("finetuned_toy_city.toy_city.answer_samples: used, though explained as unused")
