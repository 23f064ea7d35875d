"""The report's cells and numbers. That every number equals the MLflow run's is checked on a real run
(tests/wiring/test_own_testbed.py)."""

import pytest

from retraction_kedro.evidence import proportion
from retraction_kedro.pipelines.reporting.nodes import Numbers
from retraction_kedro.pipelines.reporting.render import Section, _cell, render_html, render_markdown


def test_an_estimate_shows_its_interval_and_n_and_an_undefined_one_says_so():
    recall = proportion(3, 12)
    assert _cell(recall) == f"0.250 [{recall['ci_low']:.2f}, {recall['ci_high']:.2f}] n=12"
    assert _cell(proportion(0, 0)) == "undefined n=0"
    assert _cell(0.5) == "0.500" and _cell(None) == "-" and _cell(7) == "7"


def test_numbers_carry_the_mlflow_keys_of_an_estimate_and_leave_undefined_values_out():
    numbers = Numbers()
    numbers.note("geo_city.retraction_recall", proportion(3, 12))
    numbers.note("geo_city.retraction_precision", proportion(0, 0))
    assert numbers.metrics["geo_city.retraction_recall"] == 0.25 and numbers.metrics["geo_city.retraction_recall.n"] == 12
    assert numbers.metrics["geo_city.retraction_recall.ci_low"] == pytest.approx(proportion(3, 12)["ci_low"])
    assert "geo_city.retraction_precision" not in numbers.metrics and numbers.metrics["geo_city.retraction_precision.n"] == 0


def test_pages_show_the_same_cells_in_html_and_markdown():
    section = Section("Baseline retraction", "why", ["testbed", "retraction_recall"], [["geo_city", proportion(3, 12)]], params='{"judge": "rules"}')
    page, markdown = render_html({"model": "m"}, [section]), render_markdown({"model": "m"}, [section])
    cell = _cell(proportion(3, 12))
    assert f"<td>{cell}</td>" in page and f"| geo_city | {cell} |" in markdown
    assert "<h2>Baseline retraction</h2>" in page and "## Baseline retraction" in markdown
