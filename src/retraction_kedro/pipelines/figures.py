"""Interactive (plotly) figures of the run, previewed by kedro-viz; the report draws its own static copies."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots


def _error_bars(estimates: list[dict[str, Any]]) -> dict[str, Any]:
    """Asymmetric error bars of 95% intervals (undefined estimates draw none)."""
    value = [e["value"] for e in estimates]
    plus = [None if e["value"] is None else e["ci_high"] - e["value"] for e in estimates]
    minus = [None if e["value"] is None else e["value"] - e["ci_low"] for e in estimates]
    return {"y": value, "error_y": {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}}


def steering_sweep_figure(sweep: pl.DataFrame) -> go.Figure:
    """Dose-response: retraction recall and the well-formed share against signed alpha, one line per
    direction and band, with 95% intervals; alpha 0 is the unsteered run."""
    rows = sweep.to_dicts()
    baseline = next(row for row in rows if row["band"] == "none")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("retraction recall", "well-formed continuations"))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["band"] != "none":
            groups.setdefault((row["direction"], row["band"]), []).append(row)
    for (direction, band), group in groups.items():
        points = sorted([*group, baseline], key=lambda row: row["alpha"])
        x = [row["alpha"] for row in points]
        for panel, metric in ((1, "retraction_recall"), (2, "well_formed")):
            figure.add_trace(
                go.Scatter(x=x, mode="lines+markers", name=f"{direction}, layers {band}", legendgroup=f"{direction} {band}",
                           showlegend=panel == 1, **_error_bars([row[metric] for row in points])),  # fmt: skip
                row=panel,
                col=1,
            )
    figure.update_yaxes(range=[0, 1])
    figure.update_xaxes(title_text=f"alpha ({baseline['scale']} scale; negative: toward 'wrong')", row=2, col=1)
    figure.update_layout(title=f"Steering sweep (n = {baseline['retraction_recall']['n']} wrong answers for recall)")
    return figure


def intervention_figure(report: dict[str, Any]) -> go.Figure:
    """Retraction rate under each configuration with its 95% interval."""
    names = list(report)
    figure = go.Figure(go.Bar(x=names, **_error_bars([report[name]["retraction_rate"] for name in names])))
    figure.update_layout(title="Retraction rate under each intervention", yaxis_title="retraction rate", yaxis_range=[0, 1])
    return figure


def probe_accuracy_figure(metrics: pl.DataFrame, truthfulness_metrics: pl.DataFrame, testbed: str) -> go.Figure:
    """Probe accuracy against layer, with 95% intervals: on the truthfulness test split, and on a testbed
    against correctness and as a predictor of retraction."""
    figure = go.Figure()
    for table, column, label in (
        (truthfulness_metrics, "accuracy", "truthfulness test accuracy"),
        (metrics, "correctness_accuracy", f"{testbed}: accuracy against correctness"),
        (metrics, "retraction_prediction_accuracy", f"{testbed}: retraction prediction accuracy"),
    ):
        figure.add_trace(go.Scatter(x=table["layer"].to_list(), mode="lines+markers", name=label, **_error_bars(table[column].to_list())))
    figure.update_layout(title=f"Belief probe accuracy by layer ({testbed})", xaxis_title="layer", yaxis_title="accuracy", yaxis_range=[0, 1])
    return figure
