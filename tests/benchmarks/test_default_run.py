"""benchmarks/default_run.py: its meter, its time limit, and the README table of its before/now runs."""

import json
import sys
from unittest import mock

import pytest

from retraction_kedro.lm import GenerationSettings, generation
from tests.benchmarks.test_benchmark_tools import load_benchmark
from tests.lm.test_generation import system_prompts_for


@pytest.fixture
def default_run():
    return load_benchmark("default_run")


def test_the_meter_counts_every_generation_call_by_stage(tiny_lm, default_run):
    prompts = system_prompts_for(tiny_lm)
    settings = GenerationSettings(max_new_tokens=6, batch_size=4, stop_at_newline=False)
    meter = default_run.GenerationMeter()
    meter.stage = "activations"
    with mock.patch.object(generation, "generate_with_counts", meter.wrap(generation.generate_with_counts)):
        pairs = generation.generate_with_counts(tiny_lm, prompts, settings, show_progress=False)
        sampled = generation.generate_with_counts(tiny_lm, prompts * 2, GenerationSettings(max_new_tokens=4, do_sample=True), show_progress=False)
    totals = meter.totals["activations"]
    assert totals["prompts"] == len(prompts) * 3 and totals["seconds"] > 0
    assert totals["tokens"] == sum(count for _, count in pairs + sampled)  # each row's tokens, its stop token included


def stage(name, seconds, generation_seconds, tokens):
    return {"stage": name, "seconds": seconds, "generation": {"seconds": generation_seconds, "prompts": 10, "tokens": tokens}}


def test_the_default_run_table_comes_from_its_json(tmp_path, monkeypatch):
    readme_table = load_benchmark("readme_table")
    result = {
        "machine": {"cpu_count": 2, "torch_threads": 2, "load_average_at_start": [1.0, 1, 1]},
        "load_average_at_end": [2.0, 1, 1],
        "runs": {
            "before": {
                "stages": [stage("data_construction", 600.0, 480.0, 12000), stage("probing", 60.0, 0.0, 0)],
                "seconds": 660.0, "generation_seconds": 480.0, "generated_tokens": 12000, "commit": "9c8153d",
            },
            "now": {
                "stages": [stage("data_construction", 300.0, 200.0, 11800), stage("probing", 66.0, 0.0, 0)],
                "seconds": 366.0, "generation_seconds": 200.0, "generated_tokens": 11800, "commit": "abc1234",
            },
        },
    }  # fmt: skip
    (tmp_path / "default_run.json").write_text(json.dumps(result))
    readme = tmp_path / "README.md"
    old = f"{readme_table.BEGIN}\nkept figures\n{readme_table.END}"
    readme.write_text(f"{old}\ntext\n{readme_table.DEFAULT_RUN_BEGIN}\nold\n{readme_table.DEFAULT_RUN_END}\nend\n")
    monkeypatch.setattr(sys, "argv", ["readme_table.py", "--readme", str(readme), "--results", str(tmp_path)])
    readme_table.main()
    text = readme.read_text()
    assert text.startswith(old + "\ntext\n")  # no benchmark JSON at all: that block is left as it was
    assert "| data_construction | 10.0 min | 5.0 min | 2.00x | 8.0 min, 3.3 min | 12,000, 11,800 |" in text
    assert "| probing | 1.0 min | 1.1 min | 0.91x |" in text  # a slower stage is shown slower
    assert "| whole run | 11.0 min | 6.1 min | 1.80x |" in text
    assert "Generation was 73% of the run before" in text
    assert "at commit 9c8153d (before) and at abc1234 (now)" in text
    assert text.endswith(f"{readme_table.DEFAULT_RUN_END}\nend\n")


def test_a_time_limit_keeps_the_finished_stages_and_bounds_the_cut_one(default_run, monkeypatch):
    import time

    import mlflow  # noqa: F401  (imported before the clock starts: its first import alone can take a second)
    from kedro.framework import session as kedro_session
    from kedro.framework import startup

    class Session:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def run(self, pipeline_names):
            time.sleep({"quick": 0.1, "slow": 30}[pipeline_names[0]])

    monkeypatch.setattr(kedro_session.KedroSession, "create", Session)
    monkeypatch.setattr(startup, "bootstrap_project", lambda path: None)
    saved = []
    default_run.stop_at_time_limit(2 / 60)  # two seconds
    try:
        result, stopped = default_run.run_stages("now", ["quick", "slow", "never"], saved.append)
    finally:
        default_run.signal.alarm(0)
    assert stopped
    assert [row["stage"] for row in result["stages"]] == ["quick", "slow"]  # the stage after the cut one never ran
    assert result["stages"][1]["stopped"] and 1 < result["stages"][1]["seconds"] < 10  # cut at the limit, not slept out
    assert not result["finished"]
    assert [[row["stage"] for row in partial["stages"]] for partial in saved] == [["quick"]]  # saved when it finished


def test_the_table_of_a_run_stopped_by_the_time_limit_shows_bounds_and_no_whole_run(tmp_path):
    readme_table = load_benchmark("readme_table")
    slow = {**stage("interventions", 2700.0, 2000.0, 9000), "stopped": True}
    result = {
        "machine": {"cpu_count": 2, "torch_threads": 2, "load_average_at_start": [1.0, 1, 1]},
        "load_average_at_end": [2.0, 1, 1],
        "stages_order": ["data_construction", "interventions", "sft"],
        "time_limit_minutes": 150,
        "runs": {
            "now": {
                "stages": [stage("data_construction", 300.0, 200.0, 12000), stage("interventions", 900.0, 600.0, 30000),
                           stage("sft", 360.0, 60.0, 1000)],
                "finished": True, "seconds": 1560.0, "generation_seconds": 860.0, "generated_tokens": 43000,
            },
            "before": {
                "stages": [stage("data_construction", 600.0, 500.0, 12000), slow],
                "finished": False, "seconds": 3300.0, "generation_seconds": 2500.0, "generated_tokens": 21000,
            },
        },
    }  # fmt: skip
    (tmp_path / "default_run.json").write_text(json.dumps(result))
    text = readme_table.render_default_run(tmp_path)
    assert "| data_construction | 10.0 min | 5.0 min | 2.00x | 8.3 min, 3.3 min | 12,000, 12,000 |" in text
    assert "| interventions | > 45.0 min (stopped) | 15.0 min | > 3.00x | - | - |" in text  # a lower bound
    assert "| sft | not run | 6.0 min | - |" in text
    assert "whole run" not in text and "Generation was" not in text  # no whole-run figure from a cut-off run
    assert "time limit (150 min)" in text
    assert "Over the stages both runs finished, generated tokens per second of generation rose 2.50x." in text


def test_the_gpu_table_comes_from_the_committed_scale_json(tmp_path):
    readme_table = load_benchmark("readme_table")
    run = tmp_path / "h200-2026-12-04"
    run.mkdir()
    speed = lambda value: {"median": value, "min": value - 1, "max": value + 1}  # noqa: E731
    row = lambda value, first: {"tokens_per_s": speed(value), "first_call_seconds": first}  # noqa: E731
    result = {
        "gpu": "NVIDIA H200", "dtype": "torch.bfloat16", "versions": {"torch": "2.11.0", "transformers": "5.17.0"},
        "matmul_peak_gflops": {"median": 671000.0}, "workload": {"repeats": 3},
        "generation": {"new_tokens_per_example": 64, "batch_1": row(43.6, 4.1), "batched": row(4314.0, 6.2), "decodings": {
            "compiled": {"batch_1": row(152.0, 25.0), "batched": row(8398.0, 27.7), "batch_1_over_loop": 3.49,
                         "batched_over_loop": 1.95, "texts_equal_to_loop": "0 of 132"},
            "cudagraphs": {"error": "RuntimeError: no graph"}}},
    }  # fmt: skip
    (run / "scale_full.json").write_text(json.dumps(result))
    text = readme_table.render_gpu(tmp_path)
    assert "one NVIDIA H200 (2026-12-04; torch 2.11.0, transformers 5.17.0; bf16 matmul peak 671 TFLOP/s" in text
    assert "| loop | 43.6 (42.6-44.6) | 4314 (4313-4315) | 4.1 s / 6.2 s | - |" in text
    assert "| compiled (3.49x, 1.95x the loop) | 152 (151-153) | 8398 (8397-8399) | 25.0 s / 27.7 s | 0 of 132 |" in text
    assert "| cudagraphs | could not run: RuntimeError: no graph |" in text
    assert readme_table.render_gpu(tmp_path / "none") is None
