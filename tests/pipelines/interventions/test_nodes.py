import polars as pl
import pytest
import torch

from retraction_kedro.config import ParameterError
from retraction_kedro.config.interventions import InterventionParameters, LayerBand, SteeringSetting
from retraction_kedro.pipelines.evaluation.nodes import judge_continuations
from retraction_kedro.pipelines.interventions import nodes, runs
from retraction_kedro.pipelines.interventions.factory import SteeringVectors
from tests.conftest import make_testbed, model_params

TESTBED = make_testbed()
QUESTIONS = pl.DataFrame([{"country": c, "question": f"Name a city in {c}."} for c in ("Germany", "France")])
EVALUATION = {"judge": "rules", "llm_judge": {"model": {"name": "tiny"}}}
EVIDENCE = {"seed": 0, "resamples": 200}
RUNTIME = {"resume_dir": None, "show_progress": False}
ACTIVATIONS = {"max_new_tokens": 6, "suffix": "", "layers": None, "position": -1, "dtype": "float32"}
BAND = {"first": 0, "last": 1}
SETTINGS = {
    "max_new_tokens": 6,
    "sweep": {"split": "train", "bands": [{"first": 0, "last": 1}, {"from_fraction": 0.5, "to_fraction": 1.0}], "alphas": [0.5],
              "scale": "relative", "directions": ["mean_difference", "probe"]},
    "configurations": [
        {"name": "steer_none", "kind": "none"},
        {"name": "steer_neg", "kind": "steer", "from_sweep": True, "sign": -1},
        {"name": "steer_probe_neg", "kind": "steer", "steering": {"layers": BAND, "alpha": -2.0, "scale": "relative", "direction": "probe"}},
        {"name": "steer_ablate", "kind": "ablate", "steering": {"layers": BAND, "alpha": 1.0}},
        {"name": "patch_none", "kind": "none", "suffix": " is"},
        {"name": "patch_steered_neg", "kind": "steer", "suffix": " is", "position": -2, "steering": {"layers": BAND, "alpha": -3.0}},
        {"name": "patch_values_neg", "kind": "value_patch", "source": "patch_steered_neg", "suffix": " is", "position": -2},
        {"name": "patch_attention_neg", "kind": "attention_patch", "source": "patch_steered_neg", "suffix": " is", "position": -1},
        {"name": "patch_attention_top2_neg", "kind": "attention_patch", "source": "patch_steered_neg", "suffix": " is", "position": -1,
         "top_k_heads": 2},
    ],
}  # fmt: skip


def continuations():
    rows = [("Name a city in Germany.", "Germany", "Lyon", False), ("Name a city in Germany.", "Germany", "Bonn", True),
            ("Name a city in France.", "France", "Paris", True), ("Name a city in France.", "France", "Rome", False)]  # fmt: skip
    return pl.DataFrame([
        {"question": q, "country": c, "name": n, "result": r, "index": i,
         "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": n}]}
        for i, (q, c, n, r) in enumerate(rows)
    ])  # fmt: skip


def test_directions_are_mean_correct_minus_mean_wrong_with_the_residual_norm():
    hidden = torch.tensor([[[1.0, 0.0]], [[3.0, 4.0]], [[0.0, 1.0]]])  # 3 examples, 1 layer, 2 dims
    out = nodes.steering_directions({"hidden": hidden}, pl.DataFrame({"label": [1, 1, 0]}))
    assert torch.allclose(out["mean_difference"], torch.tensor([[2.0, 1.0]]))
    assert torch.allclose(out["residual_norm"], torch.tensor([(1.0 + 5.0 + 1.0) / 3]))
    with pytest.raises(ValueError, match="both correct and wrong"):
        nodes.steering_directions({"hidden": hidden}, pl.DataFrame({"label": [1, 1, 1]}))


def test_steering_vectors_follow_the_scale_and_the_direction_source():
    directions = {"mean_difference": torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]), "residual_norm": torch.tensor([10.0, 20.0, 40.0]),
                  "layers": torch.tensor([0, 1, 2])}  # fmt: skip
    probes = {"weight": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "std": torch.tensor([[2.0, 1.0], [1.0, 4.0], [1.0, 1.0]]),
              "layers": torch.tensor([0, 1, 2])}  # fmt: skip
    vectors = SteeringVectors.from_artifacts(directions, probes)
    raw, size = vectors.steering(SteeringSetting(layers=LayerBand(first=0, last=1), alpha=-2.0), num_layers=3)
    assert raw.layers == [0, 1] and raw.alpha == -2.0 and torch.equal(raw.directions[:2], directions["mean_difference"][:2])
    assert size == pytest.approx((2 * 5 / 10 + 2 * 2 / 20) / 2)  # |alpha v| / residual norm, averaged over the band
    relative, size = vectors.steering(SteeringSetting(layers=LayerBand(from_fraction=0.5, to_fraction=1.0), alpha=0.1, scale="relative"), 3)
    assert relative.layers == [1, 2] and size == pytest.approx(0.1)
    assert torch.allclose(relative.directions[1:].norm(dim=1), torch.tensor([20.0, 40.0]))  # unit direction x typical norm
    probe, _ = vectors.steering(SteeringSetting(layers=LayerBand(first=0, last=0), alpha=1.0, scale="relative", direction="probe"), 3)
    assert torch.allclose(probe.directions[0], torch.tensor([10.0, 0.0]))  # weight / std = (0.5, 0), rescaled to norm 10
    one, _ = vectors.steering(SteeringSetting(layers=LayerBand(first=1, last=2), alpha=1.0, scale="relative", direction="probe",
                                              direction_layer=0), 3)  # fmt: skip
    assert torch.allclose(one.directions[2], torch.tensor([40.0, 0.0]))  # layer 0's direction at every layer of the band
    with pytest.raises(ValueError, match=r"layers 0-5 lie outside the model's 3 layers"):
        vectors.steering(SteeringSetting(layers=LayerBand(first=0, last=5), alpha=1.0), 3)
    partial = SteeringVectors.from_artifacts({**directions, "layers": torch.tensor([0, 2, 4])})
    with pytest.raises(ValueError, match=r"steering needs directions for layers \[1\], but activations.layers captured \[0, 2, 4\]"):
        partial.steering(SteeringSetting(layers=LayerBand(first=0, last=1), alpha=1.0), 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"configurations": [{"name": "steer_neg", "kind": "steer", "steering": {"layers": BAND, "alpha": 1}}]},
         r"suffix '' needs exactly one configuration of kind none \(found \[\]\)"),
        ({"configurations": [{"name": "steer_none", "kind": "none"}, {"name": "p", "kind": "value_patch", "source": "nothing"}]},
         r"p: source 'nothing' must name a steer or ablate configuration with the same suffix"),
        ({"configurations": [{"name": "steer_none", "kind": "none"}, {"name": "s", "kind": "steer", "steering": {"layers": BAND, "alpha": 1,
                                                                                                             "wobble": 2}}]},
         r"interventions.configurations\[1\].steering.wobble: unknown key \(got 2\)"),
        ({"configurations": [{"name": "steer_none", "kind": "none"}, {"name": "s", "kind": "steer", "steering": {"layers": {"first": 4, "last": 2},
                                                                                                             "alpha": 1}}]},
         r"the band starts after it ends \(4 > 2\)"),
        ({"sweep": {**SETTINGS["sweep"], "alphas": [0.5, -1.0]}}, r"interventions.sweep.alphas: alphas are magnitudes"),
    ],
)  # fmt: skip
def test_impossible_configurations_fail_in_one_line_naming_the_parameter(change, message):
    with pytest.raises(ParameterError, match=message) as error:
        InterventionParameters.parse({**SETTINGS, **change}, "interventions")
    assert "\n" not in str(error.value)


@pytest.fixture
def vectors_and_probes(tiny_lm, monkeypatch):
    monkeypatch.setattr(runs, "load_language_model", lambda params: tiny_lm)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, tiny_lm.num_layers, tiny_lm.hidden_size, generator=generator) * 3
    directions = nodes.steering_directions({"hidden": hidden, "layers": torch.arange(tiny_lm.num_layers)}, pl.DataFrame({"label": [1, 0] * 3}))
    probes = {"weight": torch.randn(tiny_lm.num_layers, tiny_lm.hidden_size, generator=generator),
              "std": torch.ones(tiny_lm.num_layers, tiny_lm.hidden_size), "layers": torch.arange(tiny_lm.num_layers)}  # fmt: skip
    return directions, probes


def _judge(table):
    return judge_continuations(table, QUESTIONS, QUESTIONS.head(0), TESTBED, EVALUATION, RUNTIME)


def test_every_configuration_runs_and_is_compared_with_its_baseline(vectors_and_probes):
    directions, probes = vectors_and_probes
    choice = {"setting": {"layers": BAND, "alpha": -0.5, "scale": "relative", "direction": "mean_difference"}}
    evaluated = pl.DataFrame({"name": continuations()["name"], "response": [" is fine.", " is not in Germany.", " x.", " y."]})
    table = nodes.run_interventions(continuations(), directions, probes, choice, evaluated, model_params(2), SETTINGS, ACTIVATIONS, RUNTIME)
    names = [c["name"] for c in SETTINGS["configurations"]]
    assert sorted(table["configuration"].unique().to_list()) == sorted(names) and table.height == 4 * len(names)
    by_name = {name: table.filter(pl.col("configuration") == name) for name in names}
    # the unsteered run is evaluation's own continuations (same generation settings), not generated again
    assert by_name["steer_none"]["response"].to_list() == evaluated["response"].to_list()
    assert by_name["steer_probe_neg"]["response"].to_list() != by_name["patch_none"]["response"].to_list()
    assert set(by_name["patch_values_neg"]["suffix"].to_list()) == {" is"}
    assert by_name["steer_neg"]["relative_size"][0] == pytest.approx(0.5)  # the sweep's choice, with the run's sign
    report, logged = nodes.summarize_interventions(_judge(table), SETTINGS, EVIDENCE)
    assert report["steer_probe_neg"]["baseline"] == "steer_none" and report["patch_values_neg"]["baseline"] == "patch_none"
    change = report["steer_probe_neg"]["change"]["retraction_rate"]
    assert {"value", "n", "ci_low", "ci_high", "p_value"} <= set(change) and change["n"] == 4
    assert "steer_probe_neg.change.retraction_rate.p_value" in logged and "steer_none.retraction_rate.ci_high" in logged
    # with evaluation's responses of other settings the baseline is generated here
    other = nodes.run_interventions(continuations(), directions, probes, choice, evaluated, model_params(2), SETTINGS,
                                    {**ACTIVATIONS, "max_new_tokens": 7}, RUNTIME)  # fmt: skip
    assert other.filter(pl.col("configuration") == "steer_none")["response"].to_list() != evaluated["response"].to_list()


def test_without_a_sweep_choice_the_from_sweep_runs_are_left_out_and_the_rest_run(vectors_and_probes):
    directions, probes = vectors_and_probes
    evaluated = pl.DataFrame({"name": continuations()["name"], "response": [" a.", " b.", " c.", " d."]})
    settings = {**SETTINGS, "configurations": SETTINGS["configurations"][:4]}
    table = nodes.run_interventions(continuations(), directions, probes, {"setting": None}, evaluated, model_params(2), settings, ACTIVATIONS, RUNTIME)
    assert sorted(table["configuration"].unique().to_list()) == ["steer_ablate", "steer_none", "steer_probe_neg"]
    report, _ = nodes.summarize_interventions(_judge(table), settings, EVIDENCE)
    assert sorted(report) == ["steer_ablate", "steer_none", "steer_probe_neg"]
    patched = {**SETTINGS, "configurations": [*SETTINGS["configurations"][:2],
               {"name": "patch_values_neg", "kind": "value_patch", "source": "steer_neg", "position": -1}]}  # fmt: skip
    with pytest.raises(ValueError, match="source run is from_sweep"):
        nodes.run_interventions(continuations(), directions, probes, {"setting": None}, evaluated, model_params(2), patched, ACTIVATIONS, RUNTIME)


def test_a_sampled_sweep_reuses_the_unsteered_responses_of_its_rows(vectors_and_probes):
    directions, probes = vectors_and_probes
    train = continuations()
    unsteered = pl.DataFrame({"name": train["name"], "response": [f" reply {i}." for i in range(train.height)]})
    sweep = {**SETTINGS["sweep"], "max_examples": 2, "bands": [BAND], "directions": ["mean_difference"]}
    table = nodes.run_steering_sweep(train, train.head(2), unsteered, train.head(0), directions, probes, model_params(2),
                                     {**SETTINGS, "sweep": sweep}, ACTIVATIONS, RUNTIME)  # fmt: skip
    baseline = table.filter(pl.col("configuration") == nodes.SWEEP_BASELINE)
    assert baseline.height == 2 and baseline["response"].to_list() == [f" reply {i}." for i in baseline["index"].to_list()]


def _sweep(train, test, params, evidence=EVIDENCE):
    """Both parts of the sweep as the pipeline runs them: the first group, its judgement, the rest where open."""
    directions, probes = params.pop("vectors")
    first = nodes.run_steering_sweep(train, test, train.head(0), test.head(0), directions, probes, model_params(2), params, ACTIVATIONS, RUNTIME)
    rest = nodes.run_steering_sweep_rest(_judge(first), train, test, directions, probes, model_params(2), params, RUNTIME, evidence)
    return first, rest


def test_the_sweep_runs_every_setting_on_its_split_and_chooses_by_the_written_rule(vectors_and_probes):
    train, test = continuations(), continuations().head(2)
    first, rest = _sweep(train, test, {**SETTINGS, "vectors": vectors_and_probes})
    settings = InterventionParameters.parse(SETTINGS, "interventions").sweep.settings()
    assert len(settings) == 2 * 2 * 2  # directions x bands x signed alphas
    # four examples cannot reach p < 0.05: the first band and direction leave the question open, the other six settings run
    assert first.height == 4 * (1 + 2) and rest.height == 4 * 6
    sweep, choice = nodes.summarize_steering_sweep(_judge(first), _judge(rest), SETTINGS, EVIDENCE)
    assert sweep.height == 1 + len(settings) and choice["split"] == "train" and choice["examples"] == 4 and choice["not_searched"] == []

    # The rule on hand-made verdicts: the most recall among negative settings that stay well-formed.
    table = pl.concat([first, rest], how="diagonal_relaxed")
    judged = _judge(table).with_columns(pl.lit(False).alias("retracted"), pl.lit(True).alias("well_formed"))
    best, broken = settings[2].name, settings[0].name  # "mean_difference 1-2 -0.5" and "mean_difference 0-1 -0.5"
    assert settings[2].alpha < 0 and settings[0].alpha < 0
    wrong = ~pl.col("result")
    judged = judged.with_columns(
        pl.when(pl.col("configuration").is_in([best, broken]) & wrong).then(True).otherwise(pl.col("retracted")).alias("retracted"),
        pl.when(pl.col("configuration") == broken).then(False).otherwise(pl.col("well_formed")).alias("well_formed"),
    )
    _, choice = nodes.summarize_steering_sweep(judged, judged.head(0), {**SETTINGS, "sweep": {**SETTINGS["sweep"], "settled_p": None}}, EVIDENCE)
    assert SteeringSetting.parse(choice["setting"], "choice").name == best  # broken text does not count


@pytest.mark.parametrize("settled_p, settles", [(0.6, True), (0.4, False)])
def test_the_other_bands_and_directions_run_only_where_the_first_leaves_the_question_open(vectors_and_probes, settled_p, settles):
    """The first band's negative setting retracts both wrong answers where unsteered retracts none: exact McNemar
    p = 0.5 (2 discordant pairs). Under a threshold above it the question is settled and nothing else runs."""
    directions, probes = vectors_and_probes
    params = {**SETTINGS, "sweep": {**SETTINGS["sweep"], "settled_p": settled_p}}
    train = continuations()
    first = nodes.run_steering_sweep(train, train, train.head(0), train.head(0), directions, probes, model_params(2), params, ACTIVATIONS, RUNTIME)
    assert set(first["configuration"]) == {nodes.SWEEP_BASELINE, "mean_difference 0-1 -0.5 relative", "mean_difference 0-1 +0.5 relative"}
    negative = pl.col("configuration") == "mean_difference 0-1 -0.5 relative"
    judged = _judge(first).with_columns(
        (negative & ~pl.col("result")).alias("retracted"), pl.lit(True).alias("well_formed"),
        pl.lit(" No, that is wrong.").alias("response"),  # well-formed text: the ladder bound holds
    )
    rest = nodes.run_steering_sweep_rest(judged, train, train, directions, probes, model_params(2), params, RUNTIME, EVIDENCE)
    assert rest.is_empty() == settles
    if not settles:
        assert len(set(rest["configuration"])) == 6
    sweep, choice = nodes.summarize_steering_sweep(judged, _judge(rest), params, EVIDENCE)
    assert SteeringSetting.parse(choice["setting"], "choice").name == "mean_difference 0-1 -0.5 relative" or not settles
    assert len(choice["not_searched"]) == (6 if settles else 0) and sweep.height == (3 if settles else 9)


LADDER = {**SETTINGS, "sweep": {**SETTINGS["sweep"], "alphas": [0.5, 1.0, 2.0], "bands": [BAND], "directions": ["mean_difference"]}}


def test_a_ladder_stops_above_the_first_alpha_that_breaks_the_text(vectors_and_probes, monkeypatch):
    """Each band, direction and sign climbs the alphas; a rung under the well-formed bound is the ladder's last.
    The other ladder climbs on; every rung of a round ran in one generation call."""
    directions, probes = vectors_and_probes
    calls = []
    real_run = runs.ContinuationRuns.run_steered

    def counted(self, steered, desc, suffix=""):
        calls.append([name for name, _, _ in steered])
        return real_run(self, steered, desc, suffix)

    monkeypatch.setattr(runs.ContinuationRuns, "run_steered", counted)
    broken = "mean_difference 0-1 -1 relative"  # the negative ladder's second rung
    monkeypatch.setattr(nodes, "_well_formed_share", lambda rows: 0.0 if rows and rows[0]["configuration"] == broken else 1.0)
    train = continuations()
    table = nodes.run_steering_sweep(train, train, train.head(0), train.head(0), directions, probes, model_params(2), LADDER, ACTIVATIONS, RUNTIME)
    ran = set(table["configuration"].to_list())
    assert calls == [["mean_difference 0-1 -0.5 relative", "mean_difference 0-1 +0.5 relative"],
                     [broken, "mean_difference 0-1 +1 relative"], ["mean_difference 0-1 +2 relative"]]  # fmt: skip
    assert "mean_difference 0-1 -2 relative" not in ran and broken in ran


def test_the_choice_needs_every_smaller_alpha_of_the_ladder_well_formed(vectors_and_probes, monkeypatch):
    """A setting above a broken rung is not eligible even if its own text reads well (rare: the ladder does not run it);
    settings a ladder stopped before are listed as not run."""
    directions, probes = vectors_and_probes
    monkeypatch.setattr(nodes, "_well_formed_share", lambda rows: 1.0)  # every ladder climbs to the top
    train = continuations()
    table = nodes.run_steering_sweep(train, train, train.head(0), train.head(0), directions, probes, model_params(2), LADDER, ACTIVATIONS, RUNTIME)
    low, high = "mean_difference 0-1 -0.5 relative", "mean_difference 0-1 -1 relative"
    wrong = ~pl.col("result")
    judged = _judge(table).with_columns(pl.lit(False).alias("retracted"), pl.lit(True).alias("well_formed"))
    judged = judged.with_columns(
        pl.when((pl.col("configuration") == high) & wrong).then(True).otherwise(pl.col("retracted")).alias("retracted"),
        pl.when(pl.col("configuration") == low).then(False).otherwise(pl.col("well_formed")).alias("well_formed"),
    )
    judged = judged.filter(pl.col("configuration") != "mean_difference 0-1 -2 relative")  # as if the ladder stopped there
    sweep, choice = nodes.summarize_steering_sweep(judged, judged.head(0), LADDER, EVIDENCE)
    assert choice["setting"] is None  # -0.5 broke the text; -1 above it cannot be chosen, however much it retracts
    assert choice["not_run"] == ["mean_difference 0-1 -2 relative"]
    assert sweep["configuration"].to_list()[0] == nodes.SWEEP_BASELINE and sweep.height == 1 + 5
