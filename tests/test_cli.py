"""What a user sees from the real commands (``kedro run``, ``retraction-kedro``) on a scratch project:
one line for a failure with a known cause, one line per node start and end, no library warnings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import retraction_kedro
from tests.conftest import MODEL_CACHE, build_tiny_lm, make_project

SRC = Path(retraction_kedro.__file__).resolve().parents[1]  # the package under test, whichever checkout it is
KEDRO = Path(sys.executable).parent / "kedro"
FRESH_PROBING = "run `kedro run --pipelines data_construction,activations,evaluation` first"


def command(project: Path, args: list[str], entry: str = "kedro", **env: str) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key not in ("RETRACTION_KEDRO_TRACEBACK", "KEDRO_LOGGING_CONFIG")}
    environment |= {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", **env}
    argv = [str(KEDRO), "run", *args] if entry == "kedro" else [sys.executable, "-m", "retraction_kedro", *args]
    return subprocess.Popen(argv, cwd=project, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(project: Path, args: list[str], entry: str = "kedro", **env: str) -> tuple[int, list[str]]:
    process = command(project, args, entry, **env)
    output, _ = process.communicate(timeout=600)
    return process.returncode, output.splitlines()


@pytest.fixture
def fresh_project(tmp_path) -> Path:
    """A clone's configuration and no data: what `git clone` gives."""
    return make_project(tmp_path)


def test_a_run_missing_upstream_artifacts_prints_one_line_naming_what_to_run_first(fresh_project):
    code, lines = run(fresh_project, ["--pipelines", "probing"])
    assert code == 1
    assert len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith("Error: This run reads ") and FRESH_PROBING in lines[0]
    assert "[traceback in info.log; RETRACTION_KEDRO_TRACEBACK=1 or --traceback prints it]" in lines[0]
    log = (fresh_project / "info.log").read_text()
    assert "Traceback (most recent call last)" in log and "retraction_kedro.upstream.MissingUpstreamError" in log


def test_retraction_kedro_prints_the_same_one_line_and_offers_the_testbed_pipeline(fresh_project):
    code, lines = run(fresh_project, ["--namespaces", "geo_city"], entry="retraction-kedro")
    assert code == 1
    assert lines == [
        "Error: This run reads geo_truthfulness.probe_metrics (and 2 more), which no run has made yet: run `kedro run --namespaces "
        "geo_truthfulness` first, or `kedro run --pipelines testbed_geo_city` to build both [traceback in info.log; "
        "RETRACTION_KEDRO_TRACEBACK=1 or --traceback prints it]"
    ]


def test_the_verbose_logging_config_and_traceback_flag_show_everything(fresh_project):
    code, lines = run(fresh_project, ["--pipelines", "probing", "--traceback"], KEDRO_LOGGING_CONFIG="conf/logging_verbose.yml")
    assert code == 1
    text = "\n".join(lines)
    assert "UserWarning" in text  # library warnings of start-up, hidden by default
    assert "Traceback (most recent call last)" in text and lines[-1].startswith("retraction_kedro.upstream.MissingUpstreamError: ")
    assert FRESH_PROBING in lines[-1]


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    lm = build_tiny_lm("llama")
    lm.model.save_pretrained(tmp_path / "tiny")
    lm.tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_a_default_run_shows_one_start_and_one_end_line_per_node_and_no_warnings(tmp_path, tiny_model):
    project = make_project(tmp_path / "project")
    params = f"model.name={tiny_model},world.truthfulness_per_relation=4,runtime.show_progress=false"
    code, lines = run(project, ["--pipelines", "data_construction,activations", "--namespaces", "geo_truthfulness", "--params", params])
    text = "\n".join(lines)
    assert code == 0, text
    assert not re.search("warning", text, re.IGNORECASE), text
    nodes = ["base_model_spec", "build_embedded_truthfulness", "truthfulness_hidden_states_train", "truthfulness_hidden_states_test"]
    for node in nodes:
        assert len(re.findall(rf"\] geo_truthfulness\.{node} started$", text, re.MULTILINE)) == 1, text
        assert len(re.findall(rf"\] geo_truthfulness\.{node} done in \d+\.\d (s|min)(: .+)?$", text, re.MULTILINE)) == 1, text
    assert re.search(r"truthfulness_hidden_states_train done in .*: hidden_train \d+\.\d kB, index_train 12 rows$", text, re.MULTILINE), text
    assert not re.search(r"Loading data from|Saving data to", text)  # Kedro's dataset lines: in the log file only
    log = (project / "info.log").read_text()
    assert "py.warnings" in log and "Loading data from" in log


@pytest.mark.embedded
def test_an_interrupted_run_names_the_nodes_to_resume_from(tmp_path):
    project = make_project(tmp_path)
    params = f"model.cache_dir={MODEL_CACHE},world.truthfulness_per_relation=4,runtime.show_progress=false"
    process = command(project, ["--pipelines", "data_construction,activations", "--namespaces", "geo_truthfulness", "--params", params])
    lines = []
    for line in process.stdout:  # Ctrl-C while the model computes hidden states (seconds on the embedded model)
        lines.append(line.rstrip("\n"))
        if re.search(r"truthfulness_hidden_states_\w+ started$", line):
            time.sleep(1)
            process.send_signal(signal.SIGINT)
            break
    output, _ = process.communicate(timeout=300)
    lines += output.splitlines()
    assert process.returncode == 130, "\n".join(lines)
    stop = [line for line in lines if "Run stopped: " in line]
    assert len(stop) == 1 and re.search(r"Run stopped: geo_truthfulness\.truthfulness_hidden_states_\w+ interrupted; [12] of 4 nodes not run", stop[0])
    assert re.search(r'--from-nodes "geo_truthfulness\.truthfulness_hidden_states_\w+(,geo_truthfulness\.truthfulness_hidden_states_\w+)?"$', stop[0])
    assert lines[-1] == "Interrupted."
