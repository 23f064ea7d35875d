"""Shared fixtures: tiny random-weight models built in code, and the embedded model."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from retraction_kedro.naming import DEFAULT_CACHE_DIR

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL_CACHE = PROJECT_ROOT / DEFAULT_CACHE_DIR  # the project's own: shared with `kedro run`, dequantized once
@contextmanager
def torch_threads(count: int):
    """Tiny models run far faster on one thread: their matrices are too small to split, and on a
    shared machine a second spinning thread costs 10x (measured: 31 s against 377 s for the wiring
    model's training under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request):
    """Every test but those on the embedded model runs torch on one thread."""
    if request.node.get_closest_marker("embedded"):
        yield
        return
    with torch_threads(1):
        yield


def build_tokenizer():
    from retraction_kedro.lm.tiny import tiny_tokenizer

    return tiny_tokenizer()


def build_tiny_lm(architecture: str = "llama", layers: int = 3, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from retraction_kedro.lm import LanguageModel, ModelSpec

    tokenizer = build_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False,
    )
    config = {"llama": LlamaConfig, "qwen2": Qwen2Config}[architecture](**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # random init is tiny; widen it so hidden states and logits vary across inputs
        for parameter in model.parameters():
            if parameter.dim() == 2:  # linear and embedding weights; norms stay at 1
                parameter.normal_(0, 0.2)
    model.eval()
    return LanguageModel(model=model, tokenizer=tokenizer, spec=ModelSpec(name=f"tiny-random-{architecture}"))


def model_params(batch_size: int = 2) -> dict:
    """``model`` parameters for node tests that hand the node a tiny model directly (its name is not loaded)."""
    return {"name": "tiny-random", "batch_size": batch_size}


def make_testbed(**overrides) -> dict:
    """A registry entry (``testbeds.<name>``) for a city-in-country testbed read from files."""
    entry = {
        "study": "embedded", "truthfulness": "geo_truthfulness",
        "source": {"files": {"train": "train.jsonl", "test": "test.jsonl"}},
        "constraint_field": "country", "alias_field": None, "distractor_field": None, "reject_constraint_values": False,
        "min_name_words": 1, "max_name_words": 5, "sample_seeds": None, "finetune": True,
        "verification": {"system": "Reply with the name only.", "template": "Which country is {name} in?",
                         "response_field": "country_response", "shots": 1},
    }  # fmt: skip
    verification = {**entry["verification"], **overrides.pop("verification", {})}
    return {**entry, **overrides, "verification": verification}


@pytest.fixture(scope="session")
def tiny_lm():
    return build_tiny_lm("llama")


@pytest.fixture(scope="session")
def tiny_qwen():
    return build_tiny_lm("qwen2")


@pytest.fixture(scope="session")
def embedded_lm():
    """The real default model, cached under the project's data/06_models/_cache (shared with `kedro run`)."""
    from retraction_kedro.lm import ModelSpec, load_language_model

    return load_language_model(ModelSpec(cache_dir=str(MODEL_CACHE)))


def make_project(path: Path) -> Path:
    """A scratch copy of the project's configuration: runs write data and MLflow records under ``path``.

    The embedded model cache stays the project's own (no second dequantization).
    """
    import shutil

    shutil.copytree(PROJECT_ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    # MLflow caches its stores by URI: the relative sqlite:///mlflow.db of conf/base would keep naming the
    # first project this process ran. Every environment a test runs gets the copy's own database.
    for env in ("local", "paper_released"):
        (path / "conf" / env / "mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: sqlite:///{path / 'mlflow.db'}\n")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", path / "pyproject.toml")
    labelled = Path("data/01_raw/judge_validation")  # committed data the registry names
    shutil.copytree(PROJECT_ROOT / labelled, path / labelled)
    (path / "src").mkdir()  # kedro's bootstrap wants a source folder; the package itself is installed
    return path


@pytest.fixture
def kedro_project(tmp_path, monkeypatch):
    monkeypatch.chdir(make_project(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def constructed_project(tmp_path_factory):
    """One small embedded construction run (the geo_city testbed and the truthfulness set), shared by the
    pipelines that follow it."""
    project = make_project(tmp_path_factory.mktemp("constructed"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        run_pipeline(project, "data_construction", SMALL_CONSTRUCTION, namespaces=["geo_city", "geo_truthfulness"])
    return project


SMALL_CONSTRUCTION = {"construction": {"sample_seeds": [0, 1, 2], "answer_max_new_tokens": 16}}


def run_pipeline(project: Path, pipeline: str, params: dict | None = None, env: str | None = None, **run_args):
    """Run a registered pipeline in ``project`` the way `kedro run` does (hooks, MLflow included)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    model_cache = {"model": {"cache_dir": str(MODEL_CACHE)}}
    runtime_params = _merge(model_cache, params or {})
    import mlflow

    try:
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session:
            session.run(pipeline_names=[pipeline], **run_args)
            return session
    finally:  # a failed run can stay active in this process; the next session would log into it
        while mlflow.active_run():
            mlflow.end_run()


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
