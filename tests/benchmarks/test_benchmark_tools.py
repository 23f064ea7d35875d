"""The benchmarks' FLOP count and the README table they write (the timings themselves are not tested)."""

import importlib
import json
import sys

import pytest

from tests.conftest import PROJECT_ROOT


def load_benchmark(name: str):
    """A module of benchmarks/ (scripts, not a package: they import each other from their folder)."""
    if str(PROJECT_ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_model_cost_counts_the_matrices_of_the_layers_and_the_head(tiny_lm):
    measure = load_benchmark("measure")
    cost = measure.ModelCost.of(tiny_lm.model)
    embeddings = tiny_lm.model.get_input_embeddings().weight.numel()
    norms = sum(p.numel() for p in tiny_lm.model.parameters() if p.dim() == 1)
    total = sum(p.numel() for p in tiny_lm.model.parameters())
    assert cost.body == total - embeddings - cost.head - norms  # untied head: its own matrix
    assert (cost.layers, cost.query_width) == (3, 64)
    # 3 tokens at positions 0..2 attend to 1, 2 and 3 keys
    assert cost.tokens(0, 3) == 2 * cost.body * 3 + 4 * 3 * 64 * (1 + 2 + 3)
    assert cost.tokens(2, 3) == 2 * cost.body + 4 * 3 * 64 * 3


def test_a_shared_prefix_counts_once_per_call(tiny_lm):
    cost = load_benchmark("measure").ModelCost.of(tiny_lm.model)
    lengths, new = [10, 12, 9], [4, 4, 4]
    whole = cost.generation(lengths, new, prefix=0)
    shared = cost.generation(lengths, new, prefix=6)
    assert whole - shared == 2 * cost.tokens(0, 6)  # the prefix of two of the three rows is not computed
    # generated tokens: all but the last are fed back; every one of them has its logits
    assert cost.generation([5], [3], 0) == cost.tokens(0, 5) + cost.tokens(5, 7) + cost.logits(3)
    assert cost.capture(lengths, 6) == cost.tokens(0, 6) + sum(cost.tokens(6, n) for n in lengths)


def figure(value):
    return {"median": value, "min": value * 0.9, "max": value * 1.1, "runs": [value]}


def write_results(folder):
    machine = {"cpu_count": 2, "torch_threads": 2, "load_average_at_start": [0.5, 0.4, 0.3]}
    generation = [
        {"batch_size": b, "variant": v, "new_tokens_per_example": 64, "tokens_per_s": figure(rate), "percent_of_peak": pct}
        for b, v, rate, pct in [
            (1, "decode_loop_shared_prefix", 30.0, 4.0), (1, "decode_loop_whole_prompts", 28.0, 4.0),
            (1, "transformers_generate", 25.0, 3.0), (128, "decode_loop_shared_prefix", 777.0, 47.5),
            (128, "decode_loop_whole_prompts", 600.0, 40.0), (128, "transformers_generate", 400.0, 30.0),
        ]
    ]  # fmt: skip
    runtime = {
        "model": "m", "dtype": "torch.float32", "machine": machine, "load_average_at_end": [1.5, 1, 1],
        "matmul_peak_gflops": figure(200.0), "generation": generation,
        "summary": {
            "generation_best_batch_size": 128, "generation_best_percent_of_peak": 47.5, "generation_best_over_batch_1": 25.9,
            "generation_best_over_best_transformers_generate": 1.94,
        },
    }  # fmt: skip
    runs = [
        ("decode_loop_shared_prefix", 32, 6.0),
        ("decode_loop_shared_prefix", 128, 9.0),
        ("transformers_generate", 32, 3.0),
    ]
    runtime["default_work"] = {
        "continuations": {
            "examples": 256, "default_batch_size": 32, "best_batch_size": 128, "speedup_at_default_batch": 2.0,
            "best_over_transformers_generate_at_default_batch": 3.0,
            "runs": [{"variant": v, "batch_size": b, "examples_per_s": figure(rate)} for v, b, rate in runs],
        }
    }  # fmt: skip
    (folder / "runtime.json").write_text(json.dumps(runtime))
    probing = {
        "features": {"questions": "q"}, "examples": {"train": 920}, "layers": 30, "machine": machine,
        "load_average_at_end": [1, 1, 1],
        "seconds": {n: figure(s) for n, s in [("batched", 0.2), ("per_layer_autograd", 1.3), ("per_layer_dataloader", 4.0)]},
        "speedup": {"per_layer_autograd": 6.5, "per_layer_written_out": 3.0, "per_layer_dataloader": 20.0},
        "max_accuracy_gap_to_batched": {"per_layer_autograd": 0.0},
    }  # fmt: skip
    (folder / "probing.json").write_text(json.dumps(probing))


def test_readme_tables_come_from_the_json_files(tmp_path, monkeypatch):
    readme_table = load_benchmark("readme_table")
    write_results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{readme_table.BEGIN}\nold figures\n{readme_table.END}\nafter\n")
    monkeypatch.setattr(sys, "argv", ["readme_table.py", "--readme", str(readme), "--results", str(tmp_path)])
    readme_table.main()
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith("after\n")  # the rest is left alone
    assert "old figures" not in text
    assert "| 128 | 777 (699-855) | 48% |" in text  # median (min-max) and % of peak of the row
    assert "| 6.5x | >= 5x |" in text
    assert (
        "decode loop 6.00 (5.40-6.60) vs `model.generate` 3.00 (2.70-3.30); at batch 128 9.00 (8.10-9.90) | 2.00x; 3.00x |"
        in text
    )
    assert "| steering.py | not run | |" in text  # no JSON: said, not invented
    readme_table.main()
    assert readme.read_text() == text  # rewriting is idempotent


def test_readme_without_markers_is_refused(tmp_path, monkeypatch):
    readme_table = load_benchmark("readme_table")
    (tmp_path / "README.md").write_text("# no markers\n")
    monkeypatch.setattr(
        sys, "argv", ["readme_table.py", "--readme", str(tmp_path / "README.md"), "--results", str(tmp_path)]
    )
    with pytest.raises(SystemExit, match="no <!-- benchmarks:begin -->"):
        readme_table.main()
