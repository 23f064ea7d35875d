"""The notebook runs top to bottom on a finished run, through the Kedro catalog."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT


pytestmark = [pytest.mark.integration]


def test_notebook_draws_probe_and_steering_figures(evaluated_project, monkeypatch):
    monkeypatch.setenv("RETRACTION_PROJECT", str(evaluated_project))
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "retraction_study.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(evaluated_project)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # probe accuracy, steering
    text = "".join(o.get("text", "") for o in outputs)
    assert "probed testbeds: ['geo_city']" in text and "geo_truthfulness: best truthfulness layer" in text
