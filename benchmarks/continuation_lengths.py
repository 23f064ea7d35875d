"""How long the continuations the judge reads are, and what a cap on generated tokens would change.

Reads a finished run's judged continuations (every testbed's test continuations, sampled ones, the sweep's
and the interventions' runs), re-tokenizes each first line with the run's model, and for candidate caps on
``max_new_tokens`` counts the rows the cap would cut and, among them, the rows whose verdicts change when
the cut text is judged again by the same rules judge (retraction, well-formedness). A cap is safe on this
run when it changes no verdict. Writes data/08_reporting/benchmarks/continuation_lengths.json.

    python benchmarks/continuation_lengths.py --project PATH_OF_A_FINISHED_RUN [--caps 32,48,64,96]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import write  # noqa: E402

SETS = ("judged_continuations_test", "judged_samples_test", "judged_sweep_continuations", "judged_intervention_continuations")


def latest(folder: Path) -> Path:
    """The newest version of a versioned dataset folder (``<name>.jsonl/<timestamp>/<name>.jsonl``)."""
    versions = sorted(path for path in folder.iterdir() if path.is_dir())
    return versions[-1] / folder.name


def judged_sets(project: Path, catalog) -> dict[str, tuple[str, object]]:
    """``<namespace>/<set>`` -> (the testbed it belongs to, its table), for the base model's testbeds."""
    import polars as pl

    found = {}
    root = project / "data" / "07_model_output"
    for folder in sorted(root.glob("*/*/*.jsonl")):
        namespace, name = folder.parent.name, folder.name.removesuffix(".jsonl")
        if name in SETS and "." not in namespace:
            found[f"{namespace}/{name}"] = (namespace, pl.read_ndjson(latest(folder)))
    return found


def cut(tokenizer, text: str, cap: int) -> tuple[str, int]:
    """The first line as generation with ``max_new_tokens=cap`` would have left it, and its token count."""
    line = text.split("\n", 1)[0]
    ids = tokenizer(line, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:cap]), len(ids)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="a project folder holding a finished default run")
    parser.add_argument("--caps", default="32,48,64,96")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    project = Path(args.project).resolve()
    caps = [int(cap) for cap in args.caps.split(",")]

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from retraction_kedro.lm import ModelSpec, model_shape
    from retraction_kedro.pipelines.evaluation.nodes import judge_continuations

    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        tokenizer = model_shape(ModelSpec.from_params(params["model"])).tokenizer
        result = {"project": str(project), "caps": caps, "sets": {}}
        everything: list[int] = []
        totals = {cap: {"cut": 0, "retraction_changed": 0, "well_formed_changed": 0} for cap in caps}
        for key, (testbed, table) in judged_sets(project, catalog).items():
            questions = [catalog.load(f"{testbed}.free_questions_{split}") for split in ("train", "test")]
            lengths = [cut(tokenizer, text, 1)[1] for text in table["response"].to_list()]
            everything += lengths
            row = {"rows": table.height, "tokens_p50": statistics.median(lengths), "tokens_max": max(lengths), "caps": {}}
            for cap in caps:
                long = [i for i, length in enumerate(lengths) if length > cap]
                figures = {"cut": len(long), "retraction_changed": 0, "well_formed_changed": 0}
                if long:
                    part = table[long]
                    again = judge_continuations(
                        part.with_columns(part["response"].map_elements(lambda text: cut(tokenizer, text, cap)[0], return_dtype=str)),
                        *questions, params["testbeds"][testbed], {**params["evaluation"], "judge": "rules"}, params["runtime"],
                    )  # fmt: skip
                    figures["retraction_changed"] = int((again["retracted"] != part["retracted"]).sum())
                    figures["well_formed_changed"] = int((again["well_formed"] != part["well_formed"]).sum())
                row["caps"][cap] = figures
                for name, value in figures.items():
                    totals[cap][name] += value
            result["sets"][key] = row
            print(f"{key}: {row['rows']} rows, median {row['tokens_p50']} tokens, max {row['tokens_max']}; {row['caps']}")
    result["all"] = {
        "rows": len(everything),
        "tokens_p50": statistics.median(everything),
        "tokens_p90": statistics.quantiles(everything, n=10)[-1],
        "tokens_p99": statistics.quantiles(everything, n=100)[-1],
        "caps": {cap: {**totals[cap], "cut_share": totals[cap]["cut"] / len(everything)} for cap in caps},
    }
    print(f"all: {result['all']}")
    write("continuation_lengths", result, args.output)
    return result


if __name__ == "__main__":
    main()
