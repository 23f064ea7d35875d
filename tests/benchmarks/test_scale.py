"""benchmarks/scale.py in its scaled-down CPU mode: it runs, writes its JSON, and its counts add up.

Timings are not asserted (they depend on the machine); what is checked is that every figure is the
work that ran over the time it took, and that the model is the architecture it claims to be.
"""

import json

import pytest
import torch

from tests.benchmarks.test_benchmark_tools import load_benchmark
from tests.conftest import torch_threads

ARGS = ["--scale", "small", "--device", "cpu", "--capture-examples", "6", "--batch-size", "3", "--new-tokens", "5",
        "--batch-1-examples", "2", "--repeats", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small run (module scope: before the per-test one-thread fixture, so it sets one thread itself)."""
    path = tmp_path_factory.mktemp("scale") / "scale.json"
    with torch_threads(1):
        returned = load_benchmark("scale").main([*ARGS, "--output", str(path)])
    return returned, json.loads(path.read_text())


def figures(result):
    """(name, row, unit, work) for every throughput figure in the result."""
    capture, generation = result["capture"], result["generation"]
    rows = [(f"capture {key}", capture[key], "examples", capture[key]["examples"]) for key in ("batch_1", "batched")]
    rows += [(f"generation {key}", generation[key], "tokens", generation[key]["generated_tokens"])
             for key in ("batch_1", "batched")]  # fmt: skip
    return rows


def test_the_json_written_is_the_result_returned(run):
    returned, written = run
    assert written["load_average_at_end"]  # written by measure.write, after the run
    assert {key: value for key, value in written.items() if key != "load_average_at_end"} == json.loads(
        json.dumps(returned)
    )
    assert written["device"] == "cpu" and written["gpu"] is None
    assert "no GPU figure" in written["note"]


def test_the_full_config_is_llama_31_8b_and_the_small_one_an_eighth_of_it():
    scale = load_benchmark("scale")
    from transformers import AutoModelForCausalLM, LlamaConfig

    with torch.device("meta"):  # shapes only: no memory
        full = AutoModelForCausalLM.from_config(LlamaConfig(**scale.LLAMA_31_8B), dtype=torch.bfloat16)
    assert sum(p.numel() for p in full.parameters()) == 8_030_261_248  # Llama-3.1-8B's published count
    small, big = scale.SMALL, scale.LLAMA_31_8B
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size"):
        assert big[key] == 8 * small[key], key
    # grouped-query attention kept (4 query heads per KV head, more than one KV head); heads of 64, not 128
    assert big["num_attention_heads"] // big["num_key_value_heads"] == 4 == small["num_attention_heads"] // 2
    assert small["num_key_value_heads"] == 2 and small["hidden_size"] // small["num_attention_heads"] == 64


def test_the_model_built_is_the_small_config_with_a_tokenizer_of_its_vocabulary(run):
    _, result = run
    config = result["config"]
    cost = result["model_cost"]
    assert cost["layers"] == config["num_hidden_layers"] == 4
    assert cost["head"] == config["vocab_size"] * config["hidden_size"]  # untied LM head over the full vocabulary
    assert result["prompts"]["tokenizer_vocabulary"] == config["vocab_size"]  # every id the head can pick decodes
    assert result["memory"]["parameter_bytes"] == 4 * result["parameters"]  # float32


def test_prompts_have_the_studys_length_and_share_their_system_turn(run):
    _, result = run
    prompts = result["prompts"]
    assert 40 <= prompts["tokens_min"] and prompts["tokens_max"] <= 65
    assert 20 <= prompts["shared_prefix_tokens"] < prompts["tokens_min"]
    assert result["capture"]["batched"]["shared_prefix_tokens"] == prompts["shared_prefix_tokens"]


def test_generation_counts_every_forced_token(run):
    _, result = run
    generation = result["generation"]
    assert generation["batch_1"]["examples"] == 2 and generation["batched"]["examples"] == 3
    for key in ("batch_1", "batched"):
        assert generation[key]["generated_tokens"] == generation[key]["examples"] * 5
    for key in ("steered_prompt", "steered_every_token"):
        assert generation["steering"][key]["generated_tokens"] == 3 * 5


def test_each_rate_is_the_work_over_the_seconds_of_its_own_run(run):
    _, result = run
    for name, row, unit, work in figures(result):
        seconds = row["seconds"]["runs"]
        assert len(seconds) == 2 and min(seconds) > 0, name
        assert row[f"{unit}_per_s"]["runs"] == pytest.approx([work / s for s in seconds]), name
        assert row["gflops"]["runs"] == pytest.approx([row["flops"] / s / 1e9 for s in seconds]), name
        assert row["percent_of_peak"] == pytest.approx(
            100 * row["gflops"]["median"] / result["matmul_peak_gflops"]["median"]
        ), name
    capture = result["capture"]
    assert capture["batched_over_batch_1"] == pytest.approx(
        capture["batched"]["examples_per_s"]["median"] / capture["batch_1"]["examples_per_s"]["median"]
    )


def test_flops_count_each_computed_token_once(run):
    """At least the matrices of every computed token (the shared prefix once per call), at most that plus
    attention over whole prompts and the logits of the generated tokens."""
    _, result = run
    cost = result["model_cost"]
    attention_bound = 4 * cost["layers"] * cost["query_width"]
    for name, row, unit, _ in figures(result):
        computed = row["prompt_tokens"] - (row["examples"] - 1) * row["shared_prefix_tokens"]
        if unit == "tokens":
            computed += row["generated_tokens"] - row["examples"]  # the last token is never fed back
        longest = result["prompts"]["tokens_max"] + result["generation"]["new_tokens_per_example"]
        logits = 2 * cost["head"] * row.get("generated_tokens", 0)
        assert 2 * cost["body"] * computed + logits < row["flops"], name
        assert row["flops"] <= (2 * cost["body"] + attention_bound * longest) * computed + logits, name


def test_batched_capture_matches_batch_1(run):
    _, result = run
    assert result["capture"]["max_relative_difference_batched_vs_batch_1"] < 1e-4  # float32, left padding masked


def test_steering_changes_the_continuations_and_its_overhead_is_paired_per_repeat(run):
    _, result = run
    steering = result["generation"]["steering"]
    assert steering["layers"] == [1, 2]  # layers 6-14 of 32 as a fraction of 4 layers
    unsteered = result["generation"]["batched"]["seconds"]["runs"]
    for key in ("steered_prompt", "steered_every_token"):
        variant = steering[key]
        assert variant["changed_texts"] > 0, key  # the hooks were attached
        steered = [variant["generated_tokens"] / rate for rate in variant["tokens_per_s"]["runs"]]
        assert variant["over_unsteered_per_repeat"]["runs"] == pytest.approx(
            [u / s for u, s in zip(unsteered, steered)]
        ), key


def test_peak_memory_is_the_resident_set_in_bytes(run):
    _, result = run
    memory = result["memory"]
    assert memory["kind"].startswith("cpu_peak_resident_set")
    for name, row, _, _ in figures(result):
        # the process holds the weights: a peak below them would be kB read as bytes, or the wrong field
        assert min(row["memory"]["peak_bytes"]["runs"]) > memory["parameter_bytes"], name
        assert min(row["memory"]["above_start_bytes"]["runs"]) >= 0, name
    assert memory["model_build_bytes"] > 0.5 * memory["parameter_bytes"]  # the weights' pages were written


def test_weights_that_cannot_fit_are_refused_in_one_line(monkeypatch):
    scale = load_benchmark("scale")
    monkeypatch.setattr(scale, "available_host_bytes", lambda: 2**20)
    spec = scale.ModelSpec(name="random", device="cpu", dtype="float32")
    tokenizer, _ = scale.build_tokenizer(scale.SMALL["vocab_size"], 3)
    with pytest.raises(RuntimeError, match=r"need 0\.1 GiB in torch.float32, but cpu has 0\.0 GiB free"):
        scale.build_model(scale.SCALES["small"], tokenizer, spec, 0, scale.PeakMemory(torch.device("cpu")))


def test_a_workload_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        load_benchmark("scale").main(["--device", "cpu", "--batch-size", "0"])
