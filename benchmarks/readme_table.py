"""Write the README's benchmark tables from the JSON files the benchmarks saved (no figure is copied by hand).

Replaces the text between ``<!-- benchmarks:begin -->`` and ``<!-- benchmarks:end -->`` in README.md
(required), and between ``<!-- default-run:begin -->`` and ``<!-- default-run:end -->`` where the README
has them; a benchmark whose JSON is missing is listed as not run, and a block none of whose JSON files
exist is left as it is (said on the console).

    python benchmarks/readme_table.py [--readme README.md] [--results data/08_reporting/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import OUTPUT_DIR, ROOT  # noqa: E402

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
DEFAULT_RUN_BEGIN, DEFAULT_RUN_END = "<!-- default-run:begin -->", "<!-- default-run:end -->"
GPU_BEGIN, GPU_END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
GPU_RESULTS = ROOT / "benchmarks/results"  # committed: a GPU is lent to a session now and then, its figures stay


def number(value: float) -> str:
    """Three significant digits or more, without exponents: 777, 77.7, 7.77, 0.78."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def spread(figure: dict) -> str:
    return f"{number(figure['median'])} ({number(figure['min'])}-{number(figure['max'])})"


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine_line(result: dict) -> str:
    m = result.get("machine", {})
    start, end = m.get("load_average_at_start", [None])[0], result.get("load_average_at_end", [None])[0]
    load = f"load average {start:.1f} at start, {end:.1f} at end" if start is not None and end is not None else ""
    peak = f"float32 matmul peak {m['matmul_peak_gflops']:.0f} GFLOP/s, " if "matmul_peak_gflops" in m else ""
    return f"{m.get('cpu_count', '?')} CPUs, {m.get('torch_threads', '?')} torch threads, {peak}{load}"


def runtime_tables(run: dict) -> list[str]:
    peak = run["matmul_peak_gflops"]
    lines = [
        f"`runtime.py` ({run['model']}, {run['dtype']}, {machine_line(run)}; matmul peak {spread(peak)} GFLOP/s). "
        "Medians of the repeats (min-max); FLOPs count the tokens computed, so the prefix counts once per call.",
        "",
    ]
    if "generation" in run:
        rows = {(r["batch_size"], r["variant"]): r for r in run["generation"]}
        new = run["generation"][0]["new_tokens_per_example"]
        lines += [
            f"Generation, {new} forced new tokens per prompt (tokens/s; % of the matmul peak):",
            "",
            "| batch | decode loop, shared prefix | % of peak | decode loop, whole prompts | `model.generate` | % of peak |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for batch in sorted({b for b, _ in rows}):
            shared, whole = rows[batch, "decode_loop_shared_prefix"], rows[batch, "decode_loop_whole_prompts"]
            base = rows[batch, "transformers_generate"]
            lines.append(
                f"| {batch} | {spread(shared['tokens_per_s'])} | {shared['percent_of_peak']:.0f}% "
                f"| {spread(whole['tokens_per_s'])} | {spread(base['tokens_per_s'])} | {base['percent_of_peak']:.0f}% |"
            )
        lines.append("")
    if "capture" in run:
        rows = {(r["batch_size"], r["variant"]): r for r in run["capture"]}
        first = run["capture"][0]
        lines += [
            f"Capture, all layers, {first['examples']} short chat prompts ({first['prompt_tokens'] / first['examples']:.0f} "
            f"tokens on average; examples/s):",
            "",
            "| batch | shared prefix | % of peak | whole prompts | % of peak |",
            "| --- | --- | --- | --- | --- |",
        ]
        for batch in sorted({b for b, _ in rows}):
            shared, whole = rows[batch, "shared_prefix"], rows[batch, "whole_prompts"]
            lines.append(
                f"| {batch} | {spread(shared['examples_per_s'])} | {shared['percent_of_peak']:.0f}% "
                f"| {spread(whole['examples_per_s'])} | {whole['percent_of_peak']:.0f}% |"
            )
        lines.append("")
    return lines


def summary_rows(run: dict | None, probing: dict | None, steering: dict | None, evidence: dict | None) -> list[str]:
    lines = ["| measure | result | target |", "| --- | --- | --- |"]
    if run:
        s = run["summary"]
        if "generation_best_batch_size" in s:
            lines += [
                f"| generation: best batch size (forced tokens) | {s['generation_best_batch_size']} | |",
                f"| generation at that batch: % of the matmul peak | {s['generation_best_percent_of_peak']:.0f}% | >= 45% |",
                f"| generation at that batch over batch 1 | {s.get('generation_best_over_batch_1', float('nan')):.1f}x | >= 12x |",
                "| generation over `model.generate` (each at its best batch) "
                f"| {s['generation_best_over_best_transformers_generate']:.2f}x | |",
            ]
        if "capture_best_batch_size" in s:
            lines.append(
                f"| capture, shared prefix at batch {s['capture_best_batch_size']} over whole prompts at batch 1 "
                f"| {s.get('capture_shared_best_over_whole_batch_1', float('nan')):.1f}x | >= 2x |"
            )
        for name, work in run.get("default_work", {}).items():
            runs = {(r["variant"], r["batch_size"]): r["examples_per_s"] for r in work["runs"]}
            batch, top = work["default_batch_size"], work["best_batch_size"]
            new, old = runs["decode_loop_shared_prefix", batch], runs["transformers_generate", batch]
            measure = (
                f"| default run's {name.replace('_', ' ')} ({work['examples']} prompts, examples/s) at batch {batch}: "
                f"decode loop {spread(new)} vs `model.generate` {spread(old)}"
            )
            if top == batch:  # the default is the best batch size: one figure
                lines.append(f"{measure} (best batch) | {work['speedup_at_default_batch']:.2f}x | |")
            else:
                lines.append(
                    f"{measure}; at batch {top} {spread(runs['decode_loop_shared_prefix', top])} "
                    f"| {work['speedup_at_default_batch']:.2f}x; "
                    f"{work['best_over_transformers_generate_at_default_batch']:.2f}x | |"
                )
    else:
        lines.append("| runtime.py | not run | |")
    if probing:
        seconds, speedup, gap = probing["seconds"], probing["speedup"], probing["max_accuracy_gap_to_batched"]
        n = probing["examples"]
        lines.append(
            f"| probe training, {probing['layers']} layers, {n['train']} training examples: batched "
            f"{spread(seconds['batched'])} s vs the tensor-slice per-layer loop {spread(seconds['per_layer_autograd'])} s "
            f"(max test accuracy gap {gap['per_layer_autograd']:.3f}) | {speedup['per_layer_autograd']:.1f}x | >= 5x |"
        )
        lines.append(
            f"| probe training: batched vs the same written-out trainer one layer at a time; vs the paper's DataLoader loop "
            f"| {speedup['per_layer_written_out']:.1f}x; {speedup['per_layer_dataloader']:.1f}x | |"
        )
    else:
        lines.append("| probing.py | not run | |")
    if steering:
        ratio = steering["over_unsteered"]
        lines.append(
            f"| steering (layers {steering['layers'][0]}-{steering['layers'][1]}, batch {steering['batch_size']}): "
            f"throughput of steered over unsteered, prompt only; every token "
            f"| {ratio['steered_prompt']:.3f}; {ratio['steered_every_token']:.3f} | |"
        )
    else:
        lines.append("| steering.py | not run | |")
    if evidence:
        lines.append(
            f"| bootstrap intervals ({evidence['layers']} layers): vectorized over scikit-learn per resample, AUROC; kappa "
            f"| {evidence['auroc_speedup']:.0f}x; {evidence['kappa_speedup']:.0f}x | |"
        )
    return lines


def render(results: Path) -> str | None:
    run, probing, steering, evidence = (load(results, n) for n in ("runtime", "probing", "steering", "evidence"))
    if not any((run, probing, steering, evidence)):
        return None
    lines = [BEGIN, "<!-- written by benchmarks/readme_table.py from data/08_reporting/benchmarks/*.json -->", ""]
    lines += summary_rows(run, probing, steering, evidence) + [""]
    if run:
        lines += runtime_tables(run)
    if probing:
        lines.append(f"`probing.py`: {machine_line(probing)}; features: {probing['features']['questions']}.")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def stage_time(row: dict | None) -> str:
    if row is None:
        return "not run"
    return f"> {minutes(row['seconds'])} (stopped)" if row.get("stopped") else minutes(row["seconds"])


def stage_speedup(old: dict | None, new: dict | None) -> str:
    """A stage cut off by the time limit gives a bound: it took at least the time it had run."""
    if old is None or new is None or (old.get("stopped") and new.get("stopped")):
        return "-"
    ratio = f"{old['seconds'] / new['seconds']:.2f}x"
    return f"> {ratio}" if old.get("stopped") else f"< {ratio}" if new.get("stopped") else ratio


def stage_generation(old: dict | None, new: dict | None) -> tuple[str, str]:
    if old is None or new is None or old.get("stopped") or new.get("stopped"):
        return "-", "-"
    gen_old, gen_new = old["generation"], new["generation"]
    return (
        f"{minutes(gen_old['seconds'])}, {minutes(gen_new['seconds'])}",
        f"{gen_old['tokens']:,}, {gen_new['tokens']:,}",
    )


def render_default_run(results: Path) -> str | None:
    """The default run stage by stage, at an earlier commit (before) and at this one (now)."""
    result = load(results, "default_run")
    if result is None:
        return None
    runs = result["runs"]
    before, now = runs.get("before"), runs.get("now")
    if before is None or now is None:
        raise SystemExit(f"{results / 'default_run.json'}: needs both runs (before, now): run default_run.py --before COMMIT")
    finished = before.get("finished", True) and now.get("finished", True)  # files of before the time limit: whole runs
    lines = [
        DEFAULT_RUN_BEGIN,
        "<!-- written by benchmarks/readme_table.py from data/08_reporting/benchmarks/default_run.json -->",
        "",
        f"`benchmarks/default_run.py --before {before.get('commit', '?')}` ({machine_line(result)}; one run each, "
        f"back to back): every stage of the default run at commit {before.get('commit', '?')} (before) and at "
        f"{now.get('commit', '?')} (now), each with its own code and configuration.",
        "",
        "| stage | before | now | speedup | in generation: before, now | generated tokens: before, now |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows_before = {row["stage"]: row for row in before["stages"]}
    rows_now = {row["stage"]: row for row in now["stages"]}
    order = result.get("stages_order") or list(rows_now)
    for stage in order:
        old, new = rows_before.get(stage), rows_now.get(stage)
        generation_cell, tokens_cell = stage_generation(old, new)
        lines.append(
            f"| {stage} | {stage_time(old)} | {stage_time(new)} | {stage_speedup(old, new)} "
            f"| {generation_cell} | {tokens_cell} |"
        )
    if finished:
        lines.append(
            f"| whole run | {minutes(before['seconds'])} | {minutes(now['seconds'])} "
            f"| {before['seconds'] / now['seconds']:.2f}x "
            f"| {minutes(before['generation_seconds'])}, {minutes(now['generation_seconds'])} "
            f"| {before['generated_tokens']:,}, {now['generated_tokens']:,} |"
        )
    lines.append("")
    both = [
        (rows_before[stage], rows_now[stage])
        for stage in order
        if stage in rows_before and stage in rows_now
        and not rows_before[stage].get("stopped") and not rows_now[stage].get("stopped")
    ]
    texts = []
    if not finished:
        limit = result.get("time_limit_minutes")
        texts.append(
            f"The runs stopped at the benchmark's time limit ({limit:g} min), so the whole-run figures are missing; "
            "each finished stage is a whole stage."
            if limit
            else "A run did not finish, so the whole-run figures are missing; each finished stage is a whole stage."
        )
    else:
        texts.append(f"Generation was {before['generation_seconds'] / before['seconds']:.0%} of the run before.")
    seconds_old = sum(old["generation"]["seconds"] for old, _ in both)
    seconds_new = sum(new["generation"]["seconds"] for _, new in both)
    if seconds_old and seconds_new:
        rate_old = sum(old["generation"]["tokens"] for old, _ in both) / seconds_old
        rate_new = sum(new["generation"]["tokens"] for _, new in both) / seconds_new
        scope = "In the run" if finished else "Over the stages both runs finished"
        texts.append(f"{scope}, generated tokens per second of generation rose {rate_new / rate_old:.2f}x.")
    lines += [" ".join(texts), "", DEFAULT_RUN_END]
    return "\n".join(lines)


def replace_block(text: str, begin: str, end: str, block: str | None, readme: Path) -> str:
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if block is None:
        print(f"{readme}: no JSON for {begin} ... {end}; left as it is")
        return text
    return pattern.sub(lambda _: block, text, count=1)


def render_gpu(results: Path = GPU_RESULTS) -> str | None:
    """scale.py's decoding paths at the Llama-3.1-8B config on a GPU, from the newest committed GPU run."""
    runs = sorted(results.glob("*/scale_full.json"))
    if not runs:
        return None
    path = runs[-1]
    result = json.loads(path.read_text())
    generation, versions = result["generation"], result.get("versions", {})
    peak = result["matmul_peak_gflops"]["median"] / 1000
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    lines = [
        GPU_BEGIN,
        f"<!-- written by benchmarks/readme_table.py from {where} -->",
        "",
        f"`benchmarks/scale.py` on one {result['gpu']} ({path.parent.name.split('-', 1)[1]}; torch {versions.get('torch', '?')}, "
        f"transformers {versions.get('transformers', '?')}; bf16 matmul peak {peak:.0f} TFLOP/s in the same run): the "
        f"Llama-3.1-8B architecture with random weights in {result['dtype'].removeprefix('torch.')}, "
        f"{generation['new_tokens_per_example']} forced tokens per prompt, median of {result['workload']['repeats']} "
        "runs (min-max); the first call (compilation, graph capture) is timed apart.",
        "",
        "| decoding | batch 1 (tokens/s) | batch 128 (tokens/s) | first call, batch 1 / 128 | texts equal to the loop's |",
        "| --- | --- | --- | --- | --- |",
    ]
    paths = {"loop": {"batch_1": generation["batch_1"], "batched": generation["batched"]}, **generation["decodings"]}
    for name, row in paths.items():
        if "error" in row:
            lines.append(f"| {name} | could not run: {row['error']} | | | |")
            continue
        cells = [spread(row[key]["tokens_per_s"]) for key in ("batch_1", "batched")]
        first = " / ".join(f"{row[key].get('first_call_seconds') or 0:.1f} s" for key in ("batch_1", "batched"))
        ratio = "" if name == "loop" else f" ({row['batch_1_over_loop']:.2f}x, {row['batched_over_loop']:.2f}x the loop)"
        lines.append(f"| {name}{ratio} | {cells[0]} | {cells[1]} | {first} | {row.get('texts_equal_to_loop', '-')} |")
    lines += ["", GPU_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--results", default=str(OUTPUT_DIR))
    args = parser.parse_args()
    readme = Path(args.readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers to write the benchmark tables between")
    results = Path(args.results)
    text = replace_block(text, BEGIN, END, render(results), readme)
    if DEFAULT_RUN_BEGIN in text and DEFAULT_RUN_END in text:
        text = replace_block(text, DEFAULT_RUN_BEGIN, DEFAULT_RUN_END, render_default_run(results), readme)
    if GPU_BEGIN in text and GPU_END in text:
        text = replace_block(text, GPU_BEGIN, GPU_END, render_gpu(), readme)
    readme.write_text(text)
    print(f"wrote the benchmark tables into {readme}")


if __name__ == "__main__":
    main()
