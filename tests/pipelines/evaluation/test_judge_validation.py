"""The rules judge against labels read by a person, on real continuations of the embedded model.

The set (data/01_raw/judge_validation/, see its README) was labelled and committed before any judge ran on
it. The judge runs through the evaluation's ``validate_judge`` node with the registry's entries and the
embedded world's questions, as `kedro run` runs it.
"""

from __future__ import annotations

import json
from collections import Counter

import polars as pl
import pytest
import yaml

from retraction_kedro.evidence import agreement
from retraction_kedro.pipelines.evaluation.nodes import validate_judge
from retraction_kedro.world.builders import embedded_builder
from tests.conftest import PROJECT_ROOT

CONF = PROJECT_ROOT / "conf" / "base"
RULES = {"judge": "rules", "llm_judge": {"model": {"name": "unused"}, "max_new_tokens": 8}}
RUNTIME = {"resume_dir": None, "show_progress": False}
EVIDENCE = {"seed": 0, "resamples": 1000}
# Floors: the rules judge's values on this set when first scored (kappa 0.77, precision 0.80; README), less a
# margin for rule edits that move a row or two. A change that costs more than that must say why.
KAPPA_FLOOR = 0.65
PRECISION_FLOOR = 0.7


@pytest.fixture(scope="module")
def registry() -> dict:
    return yaml.safe_load((CONF / "parameters_testbeds.yml").read_text())["testbeds"]


@pytest.fixture(scope="module")
def validated(registry) -> dict[str, dict]:
    """Each testbed with a labelled set: its registry entry, its rows and the node's report."""
    world = yaml.safe_load((CONF / "parameters_data_construction.yml").read_text())["world"]
    out = {}
    for name, entry in registry.items():
        if not entry.get("judge_validation"):
            continue
        rows = [json.loads(line) for line in (PROJECT_ROOT / entry["judge_validation"]).read_text(encoding="utf-8").splitlines()]
        train, test = embedded_builder(entry["source"]["embedded"]).tables(world)
        report, _ = validate_judge(pl.DataFrame(rows, infer_schema_length=None), pl.DataFrame(train, infer_schema_length=None),
                                   pl.DataFrame(test, infer_schema_length=None), entry, RULES, RUNTIME, EVIDENCE)  # fmt: skip
        out[name] = {"entry": entry, "rows": rows, "report": report, "world": train + test}
    return out


def test_the_set_is_real_labelled_material(validated):
    rows = [row for testbed in validated.values() for row in testbed["rows"]]
    assert set(validated) == {"geo_city", "geo_currency"} and len(rows) >= 150
    assert len({row["id"] for row in rows}) == len(rows)
    assert Counter(row["source"] for row in rows).keys() == {"greedy", "steered"}
    assert all(isinstance(row["label"], bool) and isinstance(row["result"], bool) and row["response"].strip() for row in rows)
    assert all((row["source"] == "greedy") == (row["alpha"] is None) for row in rows)
    for name, testbed in validated.items():  # each row's constraint is a real value of its testbed's field
        field = testbed["entry"]["constraint_field"]
        assert {row[field] for row in testbed["rows"]} <= {q[field] for q in testbed["world"]}, name
    assert sum(row["label"] for row in rows) >= 10 and sum(not row["label"] for row in rows) >= 100


def test_the_rules_judge_agrees_with_the_labels(validated):
    pooled = [row for testbed in validated.values() for row in testbed["report"]["rows"]]
    scores = agreement([r["label"] for r in pooled], [r["retracted"] for r in pooled], **EVIDENCE)
    print(f"\n{'testbed':<14}{'n':>5}{'labelled':>9}  precision / recall / kappa [95% interval]")
    for name, testbed in [*validated.items(), ("all", {"report": {"examples": len(pooled), "labelled_retractions": sum(r["label"] for r in pooled),
                                                                    "against_labels": scores}})]:  # fmt: skip
        report = testbed["report"]
        cells = [f"{v['value']:.2f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}] n={v['n']}" if v["value"] is not None else f"undefined n={v['n']}"
                 for v in (report["against_labels"][m] for m in ("precision", "recall", "kappa"))]  # fmt: skip
        print(f"{name:<14}{report['examples']:>5}{report['labelled_retractions']:>9}  " + " / ".join(cells))
    missed = [r["id"] for r in pooled if r["label"] and not r["retracted"]]
    false_alarms = [r["id"] for r in pooled if r["retracted"] and not r["label"]]
    print(f"missed retractions: {missed}\nfalse alarms: {false_alarms}")
    assert scores["examples"] == len(pooled) == sum(t["report"]["examples"] for t in validated.values())
    assert scores["kappa"]["value"] >= KAPPA_FLOOR and scores["precision"]["value"] >= PRECISION_FLOOR
