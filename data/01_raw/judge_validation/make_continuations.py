"""Greedy and steered continuations of the embedded model's own answers, unlabelled, for the judge-validation set.

The rows of ``geo_city.jsonl`` and ``geo_currency.jsonl`` came from this script and were then labelled by reading
(README.md). It reads a finished default run's continuation sets and truthfulness activations (``kedro run
--pipelines data_construction`` then ``activations``) and writes one row per distinct (testbed, question,
answer, continuation):

    .venv/bin/python data/01_raw/judge_validation/make_continuations.py --data data --out /tmp/unlabelled.jsonl

Steering uses the relative scale of the interventions pipeline (a unit mean-difference direction times the
layer's mean residual norm, times alpha), so the set holds text from unsteered to visibly broken.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import polars as pl
from safetensors.torch import load_file

from retraction_kedro.config.interventions import SteeringSetting
from retraction_kedro.lm import GenerationSettings, ModelSpec, continuation_prompt, generate_texts, load_language_model
from retraction_kedro.naming import model_slug
from retraction_kedro.pipelines.interventions.factory import SteeringVectors
from retraction_kedro.pipelines.interventions.nodes import steering_directions

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TESTBEDS = {"geo_city": ("country", "country_aliases"), "geo_currency": ("currency", "currency_codes")}
SPLITS = ("train", "val", "test")
GREEDY_PER_TESTBED = 50
STEERED_PER_TESTBED = 10  # a fresh seeded draw of prompts per setting
SEED = 0
# (band as fractions of depth, relative alpha); negative is toward "wrong". Mostly negative: retractions are rare.
STEERING = (
    ((0.28, 0.55), -0.1), ((0.28, 0.55), -0.2), ((0.28, 0.55), -0.3), ((0.14, 0.41), -0.2),
    ((0.48, 0.76), -0.2), ((0.28, 0.55), 0.2), ((0.28, 0.55), 0.3),
)  # fmt: skip


def _latest(path: Path) -> Path:
    """The newest version of a versioned Kedro dataset (a folder of timestamped versions), or the file itself."""
    return sorted(path.glob("*/" + path.name))[-1] if path.is_dir() else path


def _rows(data: Path, slug: str) -> list[dict]:
    rows = []
    for testbed, (field, aliases) in TESTBEDS.items():
        for split in SPLITS:
            table = pl.read_ndjson(_latest(data / "03_primary" / slug / testbed / f"continuation_{split}.jsonl"))
            for row in table.to_dicts():
                rows.append({"testbed": testbed, "split": split, "index": row["index"], "question": row["question"],
                             "name": row["name"], "result": bool(row["result"]), field: row[field],
                             aliases: list(row.get(aliases) or []), "messages": row["messages"]})  # fmt: skip
    return rows


def _draw(rows: list[dict], per_testbed: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    drawn = []
    for testbed in TESTBEDS:
        pool = [row for row in rows if row["testbed"] == testbed]
        drawn += rng.sample(pool, min(per_testbed, len(pool)))
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the data folder of a finished run")
    parser.add_argument("--out", type=Path, required=True, help="JSONL of unlabelled continuations")
    args = parser.parse_args()
    started = time.perf_counter()
    slug = model_slug(MODEL)
    rows = _rows(args.data, slug)
    truth = args.data / "04_feature" / slug / "geo_truthfulness"
    hidden = load_file(_latest(truth / "hidden_train.safetensors"))
    directions = steering_directions(hidden, pl.read_ndjson(_latest(truth / "index_train.jsonl")))
    vectors = SteeringVectors.from_artifacts(directions)
    lm = load_language_model(ModelSpec(name=MODEL, cache_dir=str(args.data / "06_models")))
    settings = GenerationSettings(max_new_tokens=128, stop_at_newline=True, batch_size=32)
    seen, out = set(), []
    for number, steer in enumerate([None, *STEERING]):
        drawn = _draw(rows, GREEDY_PER_TESTBED if steer is None else STEERED_PER_TESTBED, SEED + number)
        interventions, tag, band, alpha = [], "greedy", None, None
        if steer is not None:
            (low, high), alpha = steer
            setting = SteeringSetting.parse({"layers": {"from_fraction": low, "to_fraction": high}, "alpha": alpha, "scale": "relative"}, "steering")
            steering, _ = vectors.steering(setting, lm.model.config.num_hidden_layers)
            interventions, band, tag = [steering], setting.layers.label(), f"steer{setting.layers.label()}{alpha:+g}"
        prompts = [continuation_prompt(lm.tokenizer, row["messages"]) for row in drawn]
        texts = generate_texts(lm, prompts, settings, None, tag, True, interventions=interventions)
        for row, text in zip(drawn, texts):
            key = (row["testbed"], row["question"], row["name"], text)
            if key in seen:
                continue
            seen.add(key)
            out.append({"id": f"{row['testbed']}/{row['split']}/{row['index']}/{row['name']}/{tag}",
                        **{k: v for k, v in row.items() if k not in ("messages", "index")},
                        "source": "greedy" if steer is None else "steered", "band": band, "alpha": alpha, "response": text})  # fmt: skip
    if len({row["id"] for row in out}) != len(out):
        raise ValueError("two rows share an id")
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in out), encoding="utf-8")
    print(f"{len(out)} distinct continuations from {len(rows)} prompts in {time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
