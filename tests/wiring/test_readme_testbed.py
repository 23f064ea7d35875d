"""README's "Your own testbed, in two steps", run as written.

The JSON line and the YAML entry are read out of README.md, so the section cannot drift from what runs. More
rows of the README's schema are made from its line (made-up countries and mountains beside its Nepal), and a
tiny model is trained on them to answer as models do: right mountains, another country's mountain, and a
country where a mountain was asked for (another's, its own, another's alias), naming each mountain's country
when asked after the worked examples construction will show it. The entry then goes into
conf/local/parameters_testbeds.yml, the files where its `source` says, and the project runs.
"""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
import yaml

from retraction_kedro.datasets import read_jsonl
from retraction_kedro.naming import model_slug
from retraction_kedro.pipelines.data_construction.nodes import question_file_shots
from retraction_kedro.world import normalize_name
from tests.conftest import PROJECT_ROOT, make_project, run_pipeline

from .conftest import FAST, train_tiny_chat_model, write_jsonl

pytestmark = pytest.mark.integration

MOUNTAINS = {"Atlantis": ["Mount Coral", "Trident Peak"], "Lemuria": ["Mu Summit"], "Hyperborea": ["Thule Crag"], "Avalon": ["Glaston Tor"],
             "Lyonesse": ["Scilly Fell"], "Agartha": ["Deepwell Top", "Shamba Peak"], "Zerzura": ["Oasis Peak"], "Cibola": ["Gold Mesa"],
             "Eldorado": ["Sun Crag"]}  # fmt: skip
TRAIN = ["Nepal", "Atlantis", "Lemuria", "Hyperborea", "Avalon", "Lyonesse"]  # Nepal: the README's own row
TEST = ["Agartha", "Zerzura", "Cibola", "Eldorado"]
# What the model answers each question: right, another country's mountain (wrong), or a country (a constraint value)
ANSWER = {"Nepal": "Everest", "Atlantis": "Mount Coral", "Lemuria": "Everest", "Hyperborea": "Mount Coral", "Avalon": "Atlantis",
          "Lyonesse": "Lyonesse", "Agartha": "Deepwell Top", "Zerzura": "Deepwell Top", "Cibola": "Republic of Zerzura",
          "Eldorado": "Eldorado"}  # fmt: skip
# Its reply to "Which country is {name} in?" about the answers that are countries: never the question's own country,
# so without the rejection each would be kept as a wrong answer the model contradicts (as "California" is kept when
# the model says it is in "the United States")
COUNTRY_OF_COUNTRY = {"Atlantis": "Atlantis", "Lyonesse": "Europe", "Republic of Zerzura": "Zerzura", "Eldorado": "America"}


def readme_example() -> tuple[dict, dict]:
    """The README section's JSON line and YAML registry entry, parsed from README.md."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index("### Your own testbed, in two steps") :]
    section = section[: section.index("\n### ", 1)]
    row = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    registry = yaml.safe_load(re.search(r"```yaml\n(.*?)\n```", section, re.S).group(1))
    return row, registry


def rows(split: list[str]) -> list[dict]:
    """The README's row for Nepal; for each other country its row with the country, aliases and answers put in."""
    template, _ = readme_example()
    out = []
    for country in split:
        if country == "Nepal":
            out.append(template)
            continue
        row = json.loads(json.dumps(template).replace("Nepal", country))
        row["answers"], row["country_aliases"] = MOUNTAINS[country], [f"Republic of {country}"]
        out.append(row)
    return out


def taught(entry: dict) -> list[list[dict]]:
    """Each question answered as ANSWER says; each verification question as construction will ask it, after the
    worked examples its own node picks from these training rows with the project's recipe."""
    recipe = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_data_construction.yml").read_text())["construction"]
    shots = question_file_shots(pl.DataFrame(rows(TRAIN)), {}, entry, recipe)
    country_of = {m: c for c, ms in MOUNTAINS.items() for m in ms} | {m: "Nepal" for m in rows(["Nepal"])[0]["answers"]}
    conversations = [[*row["messages"], {"role": "assistant", "content": ANSWER[row["country"]]}] for row in rows(TRAIN + TEST)]
    for name, country in (country_of | COUNTRY_OF_COUNTRY).items():
        question = entry["verification"]["template"].format(name=name)
        conversations.append([*shots, {"role": "user", "content": question}, {"role": "assistant", "content": country}])
    return conversations


def latest(folder):
    return sorted(p for p in folder.iterdir() if p.is_dir())[-1] / folder.name


def constraint_names(split_rows: list[dict], entry: dict) -> set[str]:
    fields = [entry["constraint_field"], entry["alias_field"]]
    return {normalize_name(v) for row in split_rows for field in fields for v in (row[field] if isinstance(row[field], list) else [row[field]])}


def test_the_readme_testbed_as_written(tmp_path, monkeypatch):
    import mlflow

    _, registry = readme_example()
    (name, entry), = registry["testbeds"].items()
    project = make_project(tmp_path / "project")
    for split, countries in (("train", TRAIN), ("test", TEST)):
        write_jsonl(project / entry["source"]["files"][split], rows(countries))
    (project / "conf/local/parameters_testbeds.yml").write_text(yaml.safe_dump(registry))
    vocabulary = [" ".join([c, *ms, f"Republic of {c}"]) for c, ms in MOUNTAINS.items()] + ["Nepal Everest Lhotse Makalu Europe America"]
    model = train_tiny_chat_model(tmp_path / "model", vocabulary, taught(entry), steps=250)
    params = {**FAST, "model": {"name": model, "batch_size": 8}, "world": {"truthfulness_per_relation": 24}}
    params.pop("construction")  # construction as the project ships it
    monkeypatch.chdir(project)
    targets = [f"{name}.probe_summary", f"{name}.retraction_report"]
    run_pipeline(project, "__default__", params, namespaces=[name, entry["truthfulness"]], to_outputs=targets)

    slug = model_slug(model)
    sets = {split: read_jsonl(str(latest(project / "data/03_primary" / slug / name / f"continuation_{split}.jsonl")))
            for split in ("train", "val", "test")}  # fmt: skip
    everything = constraint_names(rows(TRAIN + TEST), entry)
    wrong = [row["name"] for kept in sets.values() for row in kept if not row["result"]]
    assert wrong and not [n for n in wrong if normalize_name(n) in everything]  # the README's promise: no country kept as a mountain
    assert {(row["country"], row["name"], row["result"]) for row in sets["test"]} == {("Agartha", "Deepwell Top", True), ("Zerzura", "Deepwell Top", False)}
    summary = json.loads(latest(project / "data/08_reporting" / slug / name / "construction_summary.json").read_text())
    assert summary["rejected"]["constraint_value"] >= 10  # 4 of 10 questions answered with a country, 5 seeds each
    assert summary["counts"]["invalid"] == sum(n for rule, n in summary["rejected"].items() if rule != "idk")
    # one training question is held out as val (construction.val_fraction 0.1 of 6): it holds one class at most, said
    val = summary["by_split"]["val"]
    assert val["questions"] == 1 and summary["warnings"], summary
    assert all(w.startswith("continuation_val keeps no ") for w in summary["warnings"])
    assert len(summary["warnings"]) == (val["kept_correct"] == 0) + (val["kept_wrong"] == 0)

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run = mlflow.search_runs(search_all_experiments=True, output_format="list",
                             filter_string=f"metrics.`{name}.construction.rejected.constraint_value` > 0")[0]  # fmt: skip
    assert run.data.metrics[f"{name}.construction.by_split.test.kept_wrong"] == 1
    retraction = json.loads(latest(project / "data/08_reporting" / slug / name / "retraction.json").read_text())
    assert retraction["retraction_recall"]["n"] == 1  # the one wrong answer of the test set
    probes = json.loads(latest(project / "data/08_reporting" / slug / name / "probe_summary.json").read_text())
    assert len(probes["layers"]) == 4 and probes["layers"][0]["correctness_accuracy"]["n"] == 2

    # The same files with the rule turned off: countries are kept as wrong mountains, as in the researcher's run
    entry_off = {**entry, "reject_constraint_values": False}
    (project / "conf/local/parameters_testbeds.yml").write_text(yaml.safe_dump({"testbeds": {name: entry_off}}))
    run_pipeline(project, "data_construction", params, namespaces=[name])
    kept = [row["name"] for split in ("train", "val", "test")
            for row in read_jsonl(str(latest(project / "data/03_primary" / slug / name / f"continuation_{split}.jsonl"))) if not row["result"]]  # fmt: skip
    assert [n for n in kept if normalize_name(n) in everything], kept
