"""benchmarks/default_run.py: the previous generation path it patches in, its meter, its prediction and its table."""

import json
import sys
from contextlib import ExitStack
from unittest import mock

import pytest

from retraction_kedro.lm import GenerationSettings, generate_texts, generate_with_counts, generation, sample_texts
from tests.benchmarks.test_benchmark_tools import load_benchmark
from tests.lm.test_generation import system_prompts_for


@pytest.fixture
def default_run():
    return load_benchmark("default_run")


def test_the_previous_path_runs_model_generate_on_whole_prompts_and_is_metered(tiny_lm, default_run):
    prompts = system_prompts_for(tiny_lm)  # a long shared system turn: the decode loop would share it
    settings = GenerationSettings(max_new_tokens=12, batch_size=2, stop_at_newline=False)
    reference = generate_with_counts(tiny_lm, prompts, settings, show_progress=False)
    meter = default_run.GenerationMeter()
    meter.stage = "activations"
    spy = mock.patch.object(tiny_lm.model, "generate", wraps=tiny_lm.model.generate)
    with ExitStack() as stack:
        for patch in default_run.generation_patches("transformers_generate", meter):
            stack.enter_context(patch)
        generate = stack.enter_context(spy)
        previous = generate_texts(tiny_lm, prompts, settings, show_progress=False)
    assert generate.call_count == 3  # one call per batch of 2 (5 prompts)
    assert all(call.kwargs["input_ids"].shape[1] > 20 for call in generate.call_args_list)  # whole prompts
    assert previous == [text for text, _ in reference]  # greedy: the same texts on both paths
    totals = meter.totals["activations"]
    assert totals["prompts"] == 5 and totals["seconds"] > 0
    assert totals["tokens"] == sum(count for _, count in reference)  # each row's tokens, its stop token included


def test_the_previous_path_samples_each_seed_reproducibly(tiny_lm, default_run):
    prompts = system_prompts_for(tiny_lm)
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, top_p=0.9, batch_size=2)
    with ExitStack() as stack:
        for patch in default_run.generation_patches("transformers_generate", default_run.GenerationMeter()):
            stack.enter_context(patch)
        first = sample_texts(tiny_lm, prompts, settings, [0, 1], show_progress=False)
        again = sample_texts(tiny_lm, prompts, settings, [0, 1], show_progress=False)
    assert first == again
    assert first[0] != first[1]


def test_the_decode_loop_variant_only_meters(tiny_lm, default_run):
    prompts = system_prompts_for(tiny_lm)
    settings = GenerationSettings(max_new_tokens=6, batch_size=4, stop_at_newline=False)
    meter = default_run.GenerationMeter()
    with ExitStack() as stack:
        for patch in default_run.generation_patches("decode_loop", meter):
            stack.enter_context(patch)
        generate = stack.enter_context(mock.patch.object(tiny_lm.model, "generate"))
        pairs = generation.generate_with_counts(tiny_lm, prompts, settings, show_progress=False)
    generate.assert_not_called()
    assert meter.totals[""]["tokens"] == sum(count for _, count in pairs) > 0


def test_the_prediction_divides_only_the_generation_time(default_run):
    runs = {
        "transformers_generate": {"seconds": 100.0, "generation_seconds": 60.0},
        "decode_loop": {"seconds": 75.0, "generation_seconds": 33.0},
    }
    runtime = {"default_work": {"continuations": {"speedup_at_default_batch": 2.0}}}
    predicted = default_run.prediction(runs, runtime)
    assert predicted["predicted_seconds"] == pytest.approx(70.0)  # 40 s outside generation + 60 s / 2
    assert predicted["measured_over_predicted"] == pytest.approx(75 / 70)
    assert predicted["predicted_speedup"] == pytest.approx(100 / 70)
    assert default_run.prediction(runs, None) is None  # no runtime.py figure: no prediction, not a made-up one


def stage(name, seconds, generation_seconds, tokens):
    return {"stage": name, "seconds": seconds, "generation": {"seconds": generation_seconds, "prompts": 10, "tokens": tokens}}


def test_the_default_run_table_comes_from_its_json(tmp_path, monkeypatch):
    readme_table = load_benchmark("readme_table")
    result = {
        "machine": {"cpu_count": 2, "torch_threads": 2, "load_average_at_start": [1.0, 1, 1]},
        "load_average_at_end": [2.0, 1, 1],
        "runs": {
            "transformers_generate": {
                "stages": [stage("data_construction", 600.0, 480.0, 12000), stage("probing", 60.0, 0.0, 0)],
                "seconds": 660.0, "generation_seconds": 480.0, "generated_tokens": 12000,
            },
            "decode_loop": {
                "stages": [stage("data_construction", 300.0, 200.0, 11800), stage("probing", 66.0, 0.0, 0)],
                "seconds": 366.0, "generation_seconds": 200.0, "generated_tokens": 11800,
            },
        },
        "prediction": {
            "runtime_generation_speedup": 2.0, "predicted_seconds": 420.0, "measured_over_predicted": 366 / 420,
            "predicted_speedup": 660 / 420,
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
    assert "predicts the run at 7.0 min (1.57x); it took 6.1 min (0.87 of the prediction)" in text
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
        result, stopped = default_run.run_variant("decode_loop", ["quick", "slow", "never"], saved.append)
    finally:
        default_run.signal.alarm(0)
    assert stopped
    assert [row["stage"] for row in result["stages"]] == ["quick", "slow"]  # the stage after the cut one never ran
    assert result["stages"][1]["stopped"] and 1 < result["stages"][1]["seconds"] < 10  # cut at the limit, not slept out
    assert not result["finished"]
    assert [[row["stage"] for row in partial["stages"]] for partial in saved] == [["quick"]]  # saved when it finished
    runtime = {"default_work": {"continuations": {"speedup_at_default_batch": 2.0}}}
    assert default_run.prediction({"transformers_generate": result, "decode_loop": result}, runtime) is None


def test_the_table_of_a_run_stopped_by_the_time_limit_shows_bounds_and_no_whole_run(tmp_path):
    readme_table = load_benchmark("readme_table")
    slow = {**stage("interventions", 2700.0, 2000.0, 9000), "stopped": True}
    result = {
        "machine": {"cpu_count": 2, "torch_threads": 2, "load_average_at_start": [1.0, 1, 1]},
        "load_average_at_end": [2.0, 1, 1],
        "stages_order": ["data_construction", "interventions", "sft"],
        "time_limit_minutes": 150,
        "runs": {
            "decode_loop": {
                "stages": [stage("data_construction", 300.0, 200.0, 12000), stage("interventions", 900.0, 600.0, 30000),
                           stage("sft", 360.0, 60.0, 1000)],
                "finished": True, "seconds": 1560.0, "generation_seconds": 860.0, "generated_tokens": 43000,
            },
            "transformers_generate": {
                "stages": [stage("data_construction", 600.0, 500.0, 12000), slow],
                "finished": False, "seconds": 3300.0, "generation_seconds": 2500.0, "generated_tokens": 21000,
            },
        },
        "prediction": None,
    }  # fmt: skip
    (tmp_path / "default_run.json").write_text(json.dumps(result))
    text = readme_table.render_default_run(tmp_path)
    assert "| data_construction | 10.0 min | 5.0 min | 2.00x | 8.3 min, 3.3 min | 12,000, 12,000 |" in text
    assert "| interventions | > 45.0 min (stopped) | 15.0 min | > 3.00x | - | - |" in text  # a lower bound
    assert "| sft | not run | 6.0 min | - |" in text
    assert "whole run" not in text and "Generation was" not in text  # no whole-run figure from a cut-off run
    assert "time limit (150 min)" in text
    assert "Over the stages both runs finished, generated tokens per second of generation rose 2.50x." in text


def test_predict_only_adds_the_prediction_to_the_saved_runs(tmp_path, monkeypatch, default_run):
    runs = {
        "transformers_generate": {"seconds": 100.0, "generation_seconds": 60.0},
        "decode_loop": {"seconds": 75.0, "generation_seconds": 33.0},
    }
    saved = tmp_path / "default_run.json"
    saved.write_text(json.dumps({"runs": runs, "prediction": None, "load_average_at_end": [3.0, 2.0, 1.0]}))
    runtime = tmp_path / "runtime_default_work.json"
    runtime.write_text(json.dumps({"default_work": {"continuations": {"speedup_at_default_batch": 2.0}}}))
    argv = ["default_run.py", "--predict-only", "--output", str(saved), "--runtime", str(runtime)]
    monkeypatch.setattr(sys, "argv", argv)
    default_run.main()
    result = json.loads(saved.read_text())
    assert result["prediction"]["predicted_seconds"] == pytest.approx(70.0)
    assert result["prediction"]["runtime_json"] == str(runtime)
    assert result["runs"] == runs and result["load_average_at_end"] == [3.0, 2.0, 1.0]  # the runs' own figures kept
    monkeypatch.setattr(sys, "argv", [*argv[:3], str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit, match="missing.json does not exist"):
        default_run.main()
