"""HTML and Markdown rendering of report sections; figures as embedded PNG (offline, no JS)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any


@dataclass
class Section:
    title: str
    description: str
    columns: list[str]
    rows: list[list[Any]]
    figure: str | None = None  # base64 PNG
    params: str | None = None  # the parameter group behind the section, as JSON
    extra_table: tuple[list[str], list[list[Any]]] | None = None


def _cell(value: Any) -> str:
    """A number; an estimate as ``value [ci_low, ci_high] n=N`` (``undefined n=0`` when it has no value)."""
    if isinstance(value, dict) and "value" in value:
        if value["value"] is None:
            return f"undefined n={value['n']}"
        interval = f" [{value['ci_low']:.2f}, {value['ci_high']:.2f}]" if value.get("ci_low") is not None else ""
        return f"{value['value']:.3f}{interval} n={value['n']}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value else f"{value:.3f}"
    return "-" if value is None else str(value)


def _values(estimates: list[dict[str, Any]]) -> tuple[list[float], list[list[float]]]:
    """Values and matplotlib's [[below], [above]] error lengths; undefined points are NaN (not drawn)."""
    nan = float("nan")
    values = [nan if e["value"] is None else e["value"] for e in estimates]
    below = [0.0 if e["value"] is None else e["value"] - e["ci_low"] for e in estimates]
    above = [0.0 if e["value"] is None else e["ci_high"] - e["value"] for e in estimates]
    return values, [below, above]


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _axes(title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.6))
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def figure_probe_accuracy(curves: dict[str, list[dict[str, Any]]]) -> str:
    figure, axes = _axes("Belief probe accuracy by layer (95% intervals)", "accuracy")
    for label, estimates in curves.items():
        values, errors = _values(estimates)
        low = [v - b for v, b in zip(values, errors[0])]
        high = [v + a for v, a in zip(values, errors[1])]
        line = axes.plot(range(len(values)), values, marker="o", markersize=3, label=label)[0]
        axes.fill_between(range(len(values)), low, high, color=line.get_color(), alpha=0.15)
    axes.set_xlabel("layer")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8)
    return _png(figure)


def _grouped_bars(axes, groups: dict[str, dict[str, dict[str, Any]]]) -> None:
    series = list(dict.fromkeys(name for bars in groups.values() for name in bars))  # first-seen order
    width = 0.8 / max(1, len(series))
    for k, name in enumerate(series):
        xs = [i + k * width for i in range(len(groups))]
        estimates = [bars.get(name, {"value": None, "n": 0}) for bars in groups.values()]
        values, errors = _values(estimates)
        axes.bar(xs, values, width, yerr=errors, capsize=2, label=name)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], list(groups))
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7, ncol=2)


def figure_interventions(bars: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    if not bars:
        return None
    figure, axes = _axes("Retraction rate under each configuration (95% intervals)", "retraction rate")
    _grouped_bars(axes, bars)
    return _png(figure)


def figure_sweep(sweeps: dict[str, Any]) -> str | None:
    """Dose-response: retraction recall against signed alpha per testbed, direction and band."""
    figure, axes = _axes("Steering sweep: retraction recall (95% intervals; alpha 0 = unsteered)", "retraction recall")
    drawn = False
    for testbed, sweep in sweeps.items():
        rows = sweep.to_dicts()
        baseline = next(row for row in rows if row["band"] == "none")
        lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if row["band"] != "none":
                lines.setdefault((row["direction"], row["band"]), []).append(row)
        for (direction, band), points in lines.items():
            points = sorted([*points, baseline], key=lambda row: row["alpha"])
            values, errors = _values([row["retraction_recall"] for row in points])
            axes.errorbar([row["alpha"] for row in points], values, yerr=errors, marker="o", markersize=3, capsize=2,
                          label=f"{testbed}: {direction}, {band}")  # fmt: skip
            drawn = True
        axes.set_xlabel(f"alpha ({baseline['scale']} scale; negative: toward 'wrong')")
    if not drawn:
        return None
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7, ncol=2)
    return _png(figure)


def figure_sft(table: list[dict[str, Any]]) -> str | None:
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for row in table:
        groups.setdefault(row["evaluated_on"], {})[row["model"]] = row["retraction_recall"]
    if not groups:
        return None
    figure, axes = _axes("Retraction recall before and after fine-tuning (95% intervals)", "retraction recall")
    _grouped_bars(axes, groups)
    return _png(figure)


def _html_table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}code{font-size:.85em;word-break:break-all}"
)


def render_html(header: dict[str, str], sections: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Retraction study: {html.escape(header['model'])}</title>",
             f"<style>{STYLE}</style></head><body><h1>Retraction study: {html.escape(header['model'])}</h1><ul>"]  # fmt: skip
    parts += [f"<li><b>{html.escape(k)}</b>: <code>{html.escape(str(v))}</code></li>" for k, v in header.items()]
    parts.append("</ul>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.description)}</p>")
        parts.append(_html_table(section.columns, section.rows))
        if section.figure:
            parts.append(f"<img alt='{html.escape(section.title)}' src='data:image/png;base64,{section.figure}'>")
        if section.extra_table:
            parts.append(_html_table(*section.extra_table))
        if section.params:
            parts.append(f"<p>Parameters: <code>{html.escape(section.params)}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(header: dict[str, str], sections: list[Section]) -> str:
    parts = [f"# Retraction study: {header['model']}", ""] + [f"- **{k}**: `{v}`" for k, v in header.items()]
    for section in sections:
        parts += ["", f"## {section.title}", "", section.description, "", _md_table(section.columns, section.rows)]
        if section.figure:
            parts += ["", f"![{section.title}](data:image/png;base64,{section.figure})"]
        if section.extra_table:
            parts += ["", _md_table(*section.extra_table)]
        if section.params:
            parts += ["", f"Parameters: `{section.params}`"]
    return "\n".join(parts) + "\n"
