import polars as pl
import pytest
import torch

from retraction_kedro.pipelines.interventions import nodes

TESTBED = {"verification": {"expected_field": "country", "alias_field": None}}
QUESTIONS = pl.DataFrame([{"country": c, "question": f"Name a city in {c}."} for c in ("Germany", "France")])
EVALUATION = {"judge": "rules"}
RUNTIME = {"resume_dir": None, "show_progress": False}
SETTINGS = {
    "normalize_directions": True, "max_new_tokens": 6,
    "steering": {"layers": [0, 1], "alpha": 2.0, "every_token": False, "ablate": True, "sweep_layers": [[0, 1], [1, 2]], "sweep_alphas": [1.0]},
    "patching": {"suffix": " is", "steer_position": -2, "value_position": -2, "attention_position": -1, "alpha": 2.0, "top_k_heads": 2},
}  # fmt: skip


def continuations():
    rows = [("Name a city in Germany.", "Germany", "Lyon", False), ("Name a city in Germany.", "Germany", "Bonn", True),
            ("Name a city in France.", "France", "Paris", True)]  # fmt: skip
    return pl.DataFrame([
        {"question": q, "country": c, "name": n, "result": r, "index": i,
         "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": n}]}
        for i, (q, c, n, r) in enumerate(rows)
    ])  # fmt: skip


def test_directions_are_mean_correct_minus_mean_wrong():
    hidden = torch.tensor([[[1.0, 0.0]], [[3.0, 2.0]], [[0.0, 1.0]]])  # 3 examples, 1 layer, 2 dims
    index = pl.DataFrame({"label": [1, 1, 0]})
    out = nodes.steering_directions({"hidden": hidden}, index, {"normalize_directions": False})
    assert torch.allclose(out["directions"], torch.tensor([[2.0, 0.0]]))
    unit = nodes.steering_directions({"hidden": hidden}, index, {"normalize_directions": True})
    assert torch.allclose(unit["directions"].norm(dim=1), torch.ones(1))
    with pytest.raises(ValueError, match="both correct and wrong"):
        nodes.steering_directions({"hidden": hidden}, pl.DataFrame({"label": [1, 1, 1]}), {})


@pytest.fixture
def directions(tiny_lm, monkeypatch):
    monkeypatch.setattr(nodes, "load_language_model", lambda params: tiny_lm)
    hidden = torch.randn(6, tiny_lm.num_layers, tiny_lm.hidden_size, generator=torch.Generator().manual_seed(0))
    return nodes.steering_directions({"hidden": hidden, "layers": torch.arange(tiny_lm.num_layers)}, pl.DataFrame({"label": [1, 0] * 3}), SETTINGS)


def test_steering_runs_three_configurations_and_the_sweep(directions):
    table, sweep, report, logged, figure = nodes.steer_continuations(
        continuations(), directions, QUESTIONS, QUESTIONS.head(0), TESTBED, EVALUATION, SETTINGS, {"batch_size": 2}, RUNTIME
    )
    assert table["configuration"].unique().sort().to_list() == ["steer_ablate", "steer_neg", "steer_none", "steer_pos"]
    assert table.height == 12 and "retracted" in table.columns
    assert sweep.height == 1 + 2 * 2  # baseline + bands x signed alphas
    assert {"steer_none", "steer_neg", "steer_pos"} <= set(report)
    assert "steer_neg.retraction_recall" in logged and logged["steer_neg.retraction_recall"]["step"] == 0
    assert len(figure.data) == 2


def test_patching_reports_every_kind(directions):
    table, report, logged = nodes.patch_continuations(
        continuations(), directions, QUESTIONS, QUESTIONS.head(0), TESTBED, EVALUATION, SETTINGS, {"batch_size": 2}, RUNTIME
    )
    expected = {"patch_none", "patch_steered_neg", "patch_values_neg", "patch_attention_neg", "patch_attention_top2_neg",
                "patch_steered_pos", "patch_values_pos", "patch_attention_pos", "patch_attention_top2_pos"}  # fmt: skip
    assert expected <= set(report)
    assert set(table["suffix"].to_list()) == {" is"}
    assert "patch_values_pos.retraction_rate" in logged


def test_a_band_outside_the_directions_fails_clearly(directions):
    with pytest.raises(ValueError, match=r"steering band \[2, 9\] needs directions for layers"):
        nodes._layers([2, 9], directions)
