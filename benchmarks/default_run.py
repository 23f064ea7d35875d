"""The default `kedro run`, stage by stage, with the project's generation and with the previous one.

Each variant runs every stage of ``__default__`` in order (one Kedro session per stage, all in one
process as `kedro run` is) in a scratch copy of the project: its own data, MLflow database and resume
journals, so nothing is reused between variants; only the dequantized embedded model is shared (loaded
once before timing, as on any machine after its first run).
  - ``decode_loop``: the project as it is (bare decode loop, prompt prefix shared once per call);
  - ``transformers_generate``: every generation call through ``model.generate`` on whole prompts,
    the path before the decode loop (``workloads.transformers_generate_call`` patched in for the run).
Sampling draws other numbers on the previous path, so the sets built differ a little: the generated
prompts and tokens are counted per stage, beside each stage's wall time and its seconds in generation.

The prediction: the previous run with its generation time divided by the speedup `runtime.py` measured
on the default run's own generation (continuations at ``model.batch_size``), the rest unchanged.
One run per variant (a run takes 30-60 min on 2 cores); the variants run back to back.
Writes data/08_reporting/benchmarks/default_run.json after every stage, so a run stopped by
``--time-limit-minutes`` (or a crash) keeps the stages it finished; a stage cut off by the limit is kept
as a lower bound (``"stopped": true``) and the stages after it are not run.

    python benchmarks/default_run.py [--variants decode_loop,transformers_generate] [--time-limit-minutes 150]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import OUTPUT_DIR, ROOT, machine, write  # noqa: E402
from workloads import transformers_generate_call  # noqa: E402

from retraction_kedro.naming import DEFAULT_CACHE_DIR  # noqa: E402
from retraction_kedro.lm import generation  # noqa: E402

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")  # as the Makefile sets them: no run reaches for the network
os.environ.setdefault("DO_NOT_TRACK", "1")
VARIANTS = ("decode_loop", "transformers_generate")
MODEL_CACHE = ROOT / DEFAULT_CACHE_DIR


class TimeLimitReached(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception`` in a node or the runner swallows it."""


def stop_at_time_limit(minutes: float | None) -> None:
    if minutes:

        def stop(signum, frame):
            raise TimeLimitReached(f"--time-limit-minutes {minutes} reached")

        signal.signal(signal.SIGALRM, stop)
        signal.alarm(max(1, round(minutes * 60)))


def scratch_project(path: Path) -> Path:
    """The project's configuration and committed raw data under ``path``, with its own MLflow database."""
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "conf" / "local" / "mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: sqlite:///{path / 'mlflow.db'}\n")
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    shutil.copytree(ROOT / "data" / "01_raw", path / "data" / "01_raw")
    (path / "src").mkdir()  # kedro's bootstrap wants a source folder; the package itself is installed
    return path


class GenerationMeter:
    """Seconds, prompts and generated tokens of every generation call, by the stage that made it."""

    def __init__(self) -> None:
        self.stage = ""
        self.totals: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "prompts": 0, "tokens": 0})

    def wrap(self, generate):
        def timed(lm, prompts, settings, *args, **kwargs):
            start = time.perf_counter()
            pairs = generate(lm, prompts, settings, *args, **kwargs)
            total = self.totals[self.stage]
            total["seconds"] += time.perf_counter() - start
            total["prompts"] += len(pairs)
            total["tokens"] += sum(count for _, count in pairs)
            return pairs

        return timed


def previous_generate_batch(lm, rows, prefix, rule, settings, seeds):
    """``generation._generate_batch`` as it was: ``model.generate`` on whole prompts, sampling seeded per batch."""
    assert prefix is None, "the previous path runs whole prompts"
    return transformers_generate_call(lm, rows, settings, seeds[0] % 2**63 if seeds else settings.seed)


def generation_patches(variant: str, meter: GenerationMeter) -> list:
    """Patches (not yet started) that meter every generation call and, for the previous path, route it there."""
    patches = [mock.patch.object(generation, "generate_with_counts", meter.wrap(generation.generate_with_counts))]
    if variant == "transformers_generate":
        patches += [
            mock.patch.object(generation, "plan_prefix", lambda *args, **kwargs: None),
            mock.patch.object(generation, "_generate_batch", previous_generate_batch),
        ]
    return patches


def variant_result(stages: list[dict], meter: GenerationMeter, sets: dict | None) -> dict:
    """One variant's figures so far: ``finished`` only when every stage ran to its end."""
    return {
        "stages": list(stages),
        "finished": sets is not None,
        "seconds": sum(row["seconds"] for row in stages),
        "generation_seconds": sum(t["seconds"] for t in meter.totals.values()),
        "generated_tokens": sum(t["tokens"] for t in meter.totals.values()),
        "continuation_sets": sets or {},
    }


def run_variant(variant: str, stages: list[str], save=lambda partial: None) -> tuple[dict, bool]:
    """Runs the stages in order, handing ``save`` the figures after each; True when the time limit stopped it."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    meter = GenerationMeter()
    patches = generation_patches(variant, meter)
    done: list[dict] = []
    sets = None
    stopped = False
    with tempfile.TemporaryDirectory(prefix=f"default-run-{variant}-") as scratch:
        project = scratch_project(Path(scratch))
        bootstrap_project(project)
        cwd = os.getcwd()
        os.chdir(project)  # the catalog's paths are relative to the project
        for patch in patches:
            patch.start()
        try:
            for stage in stages:
                meter.stage = stage
                print(f"[{variant}] {stage} ...", flush=True)
                start = time.perf_counter()
                try:
                    with KedroSession.create(
                        project_path=project, runtime_params={"model": {"cache_dir": str(MODEL_CACHE)}}
                    ) as session:
                        session.run(pipeline_names=[stage])
                except TimeLimitReached:
                    stopped = True
                row = {"stage": stage, "seconds": time.perf_counter() - start, "generation": dict(meter.totals[stage])}
                while mlflow.active_run():
                    mlflow.end_run()
                if stopped:
                    done.append({**row, "stopped": True})
                    print(f"[{variant}] {stage}: stopped by the time limit after {row['seconds']:.0f} s", flush=True)
                    break
                done.append(row)
                print(f"[{variant}] {stage}: {row['seconds']:.0f} s", flush=True)
                save(variant_result(done, meter, None))
            else:
                sets = {  # versioned: <testbed>/continuation_<split>.jsonl/<timestamp>/continuation_<split>.jsonl
                    f"{path.parents[2].name}/{path.stem}": len(path.read_text().splitlines())
                    for path in sorted((project / "data" / "03_primary").rglob("continuation_*.jsonl"))
                    if path.is_file()
                }
        finally:
            for patch in reversed(patches):
                patch.stop()
            os.chdir(cwd)
    return variant_result(done, meter, sets), stopped


def prediction(runs: dict, runtime: dict | None) -> dict | None:
    """The decode loop's run as the generation speedup of ``runtime.py`` predicts it from the previous run."""
    previous = runs.get("transformers_generate")
    if previous is None or not previous.get("finished", True) or runtime is None or "default_work" not in runtime:
        return None  # a run cut off by the time limit has no whole-run time to predict from
    work = runtime["default_work"]["continuations"]
    speedup = work["speedup_at_default_batch"]
    predicted = previous["seconds"] - previous["generation_seconds"] * (1 - 1 / speedup)
    result = {"runtime_generation_speedup": speedup, "predicted_seconds": predicted}
    if "decode_loop" in runs and runs["decode_loop"].get("finished", True):
        result["measured_over_predicted"] = runs["decode_loop"]["seconds"] / predicted
        result["measured_speedup"] = previous["seconds"] / runs["decode_loop"]["seconds"]
        result["predicted_speedup"] = previous["seconds"] / predicted
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--runtime", default=str(OUTPUT_DIR / "runtime.json"), help="runtime.py's JSON with default_work")
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--predict-only", action="store_true", help="no runs: the saved runs' prediction again, from --runtime's file"
    )
    parser.add_argument(
        "--time-limit-minutes", type=float, default=None, help="stop there, keeping the finished stages (no limit: none)"
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.predict_only:
        saved = Path(args.output) if args.output else OUTPUT_DIR / "default_run.json"
        if not saved.exists():
            raise SystemExit(f"--predict-only: {saved} does not exist; run the benchmark first")
        result = with_prediction(json.loads(saved.read_text()), Path(args.runtime))
        saved.write_text(json.dumps(result, indent=2))  # not measure.write: the load at the runs' end stays
        print(f"wrote the prediction into {saved}: {result['prediction']}")
        return

    from retraction_kedro.lm import ModelSpec, load_language_model, release_models
    from retraction_kedro.pipeline_registry import STAGES

    load_language_model(ModelSpec(cache_dir=str(MODEL_CACHE)))  # the one-time dequantization, outside the timing
    release_models()
    result = {"machine": machine(), "stages_order": list(STAGES), "runs": {}, "time_limit_minutes": args.time_limit_minutes}

    def save(variant: str, partial: dict) -> None:
        result["runs"][variant] = partial
        write("default_run", {**result, "prediction": None}, args.output)

    stop_at_time_limit(args.time_limit_minutes)
    try:
        for variant in variants:
            result["runs"][variant], stopped = run_variant(variant, list(STAGES), lambda partial: save(variant, partial))
            release_models()
            if stopped:
                break
    except TimeLimitReached:  # between two stages: what finished is already in the runs
        pass
    signal.alarm(0)
    write("default_run", with_prediction(result, Path(args.runtime)), args.output)


def with_prediction(result: dict, runtime_path: Path) -> dict:
    runtime = json.loads(runtime_path.read_text()) if runtime_path.exists() else None
    predicted = prediction(result["runs"], runtime)
    if predicted:
        predicted["runtime_json"] = str(runtime_path)
    return {**result, "prediction": predicted}


if __name__ == "__main__":
    main()
