"""The default `kedro run`, stage by stage: this checkout ("now") and, with ``--before COMMIT``, an earlier commit.

Each run goes through every stage of ``__default__`` in order (one Kedro session per stage, all in one
process as `kedro run` is) in a scratch copy of the project: its own data, MLflow database and resume
journals, so nothing is reused between runs; only the dequantized embedded model is shared (loaded once
before timing, as on any machine after its first run). ``--before COMMIT`` measures that commit's code and
configuration the same way, in a git worktree of it, in a process of its own, just before this checkout's
run: both on the same machine in one session, so the two columns compare. Per stage: wall time, seconds in
generation, prompts and tokens generated; the continuation sets' sizes at the end.

One run each (a run takes 20-40 min on 2 cores). Writes data/08_reporting/benchmarks/default_run.json after
every stage, so a run stopped by ``--time-limit-minutes`` (or a crash) keeps the stages it finished; a stage
cut off by the limit is kept as a lower bound (``"stopped": true``) and the stages after it are not run.

    python benchmarks/default_run.py [--before COMMIT] [--time-limit-minutes 150]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import OUTPUT_DIR, ROOT, machine, matmul_peak_gflops, write  # noqa: E402

from retraction_kedro.lm import generation  # noqa: E402

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")  # as the Makefile sets them: no run reaches for the network
os.environ.setdefault("DO_NOT_TRACK", "1")
MODEL_CACHE = ROOT / "data/06_models/_cache"  # this checkout's cache, shared by an earlier commit's run (same files)


class TimeLimitReached(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception`` in a node or the runner swallows it."""


def stop_at_time_limit(minutes: float | None) -> None:
    if minutes:

        def stop(signum, frame):
            raise TimeLimitReached(f"--time-limit-minutes {minutes} reached")

        signal.signal(signal.SIGALRM, stop)
        signal.alarm(max(1, round(minutes * 60)))


def scratch_project(path: Path, source: Path = ROOT) -> Path:
    """The configuration and committed raw data of the project at ``source`` under ``path``, with its own MLflow database."""
    shutil.copytree(source / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "conf" / "local" / "mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: sqlite:///{path / 'mlflow.db'}\n")
    shutil.copy(source / "pyproject.toml", path / "pyproject.toml")
    shutil.copytree(source / "data" / "01_raw", path / "data" / "01_raw")
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


def stages_result(stages: list[dict], meter: GenerationMeter, sets: dict | None) -> dict:
    """One run's figures so far: ``finished`` only when every stage ran to its end."""
    return {
        "stages": list(stages),
        "finished": sets is not None,
        "seconds": sum(row["seconds"] for row in stages),
        "generation_seconds": sum(t["seconds"] for t in meter.totals.values()),
        "generated_tokens": sum(t["tokens"] for t in meter.totals.values()),
        "continuation_sets": sets or {},
    }


def run_stages(label: str, stages: list[str], save=lambda partial: None, source: Path = ROOT) -> tuple[dict, bool]:
    """Runs the stages in order, handing ``save`` the figures after each; True when the time limit stopped it."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    meter = GenerationMeter()
    patches = [mock.patch.object(generation, "generate_with_counts", meter.wrap(generation.generate_with_counts))]
    done: list[dict] = []
    sets = None
    stopped = False
    with tempfile.TemporaryDirectory(prefix=f"default-run-{label}-") as scratch:
        project = scratch_project(Path(scratch), source)
        bootstrap_project(project)
        cwd = os.getcwd()
        os.chdir(project)  # the catalog's paths are relative to the project
        for patch in patches:
            patch.start()
        try:
            for stage in stages:
                meter.stage = stage
                print(f"[{label}] {stage} ...", flush=True)
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
                    print(f"[{label}] {stage}: stopped by the time limit after {row['seconds']:.0f} s", flush=True)
                    break
                done.append(row)
                print(f"[{label}] {stage}: {row['seconds']:.0f} s", flush=True)
                save(stages_result(done, meter, None))
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
    return stages_result(done, meter, sets), stopped


def commit_of(folder: Path) -> str:
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def run_before(commit: str, time_limit: float | None) -> dict:
    """``commit``'s default run, measured by this script in a process whose package is that commit's (a git worktree)."""
    with tempfile.TemporaryDirectory(prefix="default-run-before-") as scratch:
        tree, output = Path(scratch) / "tree", Path(scratch) / "before.json"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
        try:
            command = [sys.executable, __file__, "--label", "before", "--project", str(tree), "--output", str(output)]
            if time_limit:
                command += ["--time-limit-minutes", str(time_limit)]
            subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(tree / "src")})
            return json.loads(output.read_text())["runs"]["before"]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="an earlier commit to measure first, the same way")
    parser.add_argument("--label", default="now", help=argparse.SUPPRESS)  # "before": a run of --before's process
    parser.add_argument("--project", default=str(ROOT), help=argparse.SUPPRESS)  # whose configuration runs
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--time-limit-minutes", type=float, default=None, help="stop there, keeping the finished stages (no limit: none)"
    )
    args = parser.parse_args()
    project = Path(args.project)

    from retraction_kedro.lm import ModelSpec, load_language_model, release_models
    from retraction_kedro.pipeline_registry import STAGES

    load_language_model(ModelSpec(cache_dir=str(MODEL_CACHE)))  # the one-time dequantization, outside the timing
    release_models()
    # the same machine kind has run 135-420 GFLOP/s: the run's minutes compare across machines only beside this
    result = {"machine": {**machine(), "matmul_peak_gflops": matmul_peak_gflops()}, "stages_order": list(STAGES), "runs": {}, "time_limit_minutes": args.time_limit_minutes}
    if args.before:
        result["runs"]["before"] = {**run_before(args.before, args.time_limit_minutes), "commit": args.before}

    def save(partial: dict) -> None:
        result["runs"][args.label] = {**partial, "commit": commit_of(project)}
        write("default_run", result, args.output)

    stop_at_time_limit(args.time_limit_minutes)
    try:
        partial, _ = run_stages(args.label, list(STAGES), save, project)
        save(partial)
    except TimeLimitReached:  # between two stages: what finished is already saved
        pass
    signal.alarm(0)


if __name__ == "__main__":
    main()
