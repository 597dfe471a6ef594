"""Charts and tables of a run's metrics (plotly, pandas): pure functions of metrics.json
content, shared by the Inspect and Runs pages and the HTML audit report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from unsir_core.evaluation import table_columns
from unsir_core.presentation import ACCURACY_COLUMNS, COMPARE, SECONDS_COLUMN, SUMMARY, format_summary

# One colour per model, the same on every chart; a model not named here gets one of OTHERS,
# chosen by its name, so that it too keeps its colour from chart to chart.
COLOURS = {
    "original": "#4c78a8",
    "retrained": "#54a24b",
    "unsir": "#e45756",
    "unsir_random_noise": "#ff9da6",
    "unsir_no_noise": "#9e1b1b",
    "finetune": "#b279a2",
    "neggrad": "#f58518",
    "fisher": "#72b7b2",
    "amnesiac": "#9d755d",
    "bad_teacher": "#bab0ac",
    "random_labels": "#eeca3b",
    "salun": "#17becf",
    "scrub": "#8c564b",
    "ssd": "#bcbd22",
}
OTHERS = ["#7f7f7f", "#1f77b4", "#d62728", "#9467bd", "#e377c2", "#2ca02c"]


def colour(name: str) -> str:
    """The colour of model ``name`` (the last word of a label such as "run 2 · unsir")."""
    key = name.split(" ")[-1]
    return COLOURS.get(key) or OTHERS[sum(key.encode()) % len(OTHERS)]


def summary_table(models: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per model: the accuracies, each measured metric's summary columns (the metric
    registry's presentation), wall time and whether the method is zero-glance."""
    columns = table_columns(SUMMARY)
    rows = {
        name: {
            **{c.label: c.get(m) for c in columns},
            "zero-glance": {True: "yes", False: "no"}.get(m.get("zero_glance"), "-"),  # "-": not a method
        }
        for name, m in models.items()
    }
    table = pd.DataFrame(rows).T
    optional = [c.label for c in columns if c not in ACCURACY_COLUMNS and c is not SECONDS_COLUMN]
    return table.drop(columns=[c for c in optional if table[c].isna().all()])


def summary_text(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` as display strings, each column in its kind's format
    (``presentation.format_summary``)."""
    by_label = {c.label: c for c in table_columns()}

    def cell(label: str, value) -> str:
        column = by_label.get(label)
        return value if column is None else format_summary(column, value)

    return table.apply(lambda col: col.map(lambda v: cell(col.name, v)))


def compare_rows(models: Mapping[str, Mapping], run: str) -> list[dict]:
    """One row per model of a run: its audit figures to compare across runs (the columns the
    registry shows there), labelled."""
    return [
        {"run": run, "method": name, **{c.label: c.get(m) for c in table_columns(COMPARE)}}
        for name, m in models.items()
    ]


def compare_figure(rows: Sequence[Mapping]) -> go.Figure | None:
    """The audit figures of :func:`compare_rows` side by side (None when no run measured any)."""
    labels = [c.label for c in table_columns(COMPARE) if any(r.get(c.label) is not None for r in rows)]
    if not labels:
        return None
    return runs_figure(rows, labels, "Audit figures per run: " + ", ".join(labels))


def model_bars(values: Mapping[str, float | None], title: str) -> go.Figure:
    """One bar per model (its colour) of one figure."""
    shown = {k: v for k, v in values.items() if v is not None}
    fig = go.Figure(go.Bar(x=list(shown), y=list(shown.values()), marker_color=[colour(k) for k in shown]))
    fig.update_layout(title=title, height=320, yaxis_title=title, showlegend=False)
    return fig


# Above the plot, right-aligned: a horizontal legend below it covered the x axis' title and labels.
LEGEND_ON_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}


def layer_distance_figure(series: Mapping[str, Mapping[str, float]], title: str = "") -> go.Figure:
    """Per-layer L2 distance to the original, log scale, one line per model (layer order kept)."""
    fig = go.Figure()
    for name, dist in series.items():
        layers = list(dist)
        values = [max(float(dist[k]), 1e-12) for k in layers]  # log scale: 0 drawn at the floor
        fig.add_trace(go.Scatter(x=layers, y=values, mode="lines+markers", name=name, line={"color": colour(name)}))
    fig.update_layout(
        title=title or "Per-layer L2 distance to the original model",
        yaxis_type="log",
        yaxis_title="L2 distance (log)",
        xaxis_title="layer",
        height=420,
        legend=LEGEND_ON_TOP,
        xaxis={"tickangle": -60, "tickfont": {"size": 9}},
    )
    return fig


def prediction_figure(
    series: Mapping[str, Sequence[int]], class_names: Sequence[str], forget: Sequence[int]
) -> go.Figure:
    """Counts of predicted classes over the forget-class test images, grouped per model."""
    fig = go.Figure()
    labels = [f"{c}: {n}" + (" (forget)" if c in forget else "") for c, n in enumerate(class_names)]
    for name, counts in series.items():
        fig.add_trace(go.Bar(x=labels, y=list(counts), name=name, marker_color=colour(name)))
    fig.update_layout(
        title="What the models predict for forget-class test images",
        barmode="group",
        height=380,
        yaxis_title="images",
        xaxis_title="predicted class",
        legend=LEGEND_ON_TOP,
    )
    return fig


def calibration_trace(history: Sequence[Mapping]) -> list[Mapping]:
    """The settings a calibrated method tried (its history's calibration entries), gentlest first."""
    return sorted((h for h in history if h.get("phase") == "calibration"), key=lambda h: h["impair_lr"])


def calibration_figure(history: Sequence[Mapping]) -> go.Figure:
    """Each impair learning rate calibration tried (log x): the held-out retained accuracy and
    the forgetting signal, the chosen one marked."""
    trace = calibration_trace(history)
    setup = next((h for h in history if h.get("phase") == "calibration_setup"), {})
    x = [h["impair_lr"] for h in trace]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=[h["retain_acc"] for h in trace], name="held-out retained accuracy", mode="lines+markers")
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=[h["signal"] for h in trace], name="forgetting signal (probes still recognised)",
            mode="lines+markers", yaxis="y2", line={"dash": "dot"},
        )
    )  # fmt: skip
    if "original_retain_acc" in setup:
        fig.add_hline(y=setup["original_retain_acc"], line_dash="dash", annotation_text="original", line_color="grey")
    for h in trace:
        if h.get("chosen"):
            fig.add_vline(x=h["impair_lr"], line_color=colour("unsir"), annotation_text="chosen")
            top_up = next((t for t in history if t.get("phase") == "calibration_top_up"), None)
            if top_up is not None:  # the chosen model repaired longer (small classes): kept or not
                kept = "kept" if top_up["taken"] else "not kept"
                fig.add_trace(
                    go.Scatter(
                        x=[h["impair_lr"]], y=[top_up["retain_acc"]], mode="markers", marker_symbol="star",
                        marker_size=12, name=f"after {top_up['top_up_epochs']} more repair epoch(s), {kept}",
                    )
                )  # fmt: skip
    fig.update_layout(
        title="How calibration chose the impair learning rate",
        xaxis={  # the rates tried, half a decade of margin (a line's annotation would widen it)
            "type": "log",
            "title": "impair learning rate (repair at a fixed share of it)",
            "range": [math.log10(min(x)) - 0.5, math.log10(max(x)) + 0.5] if x else None,
        },
        yaxis={"title": "held-out retained accuracy"},
        yaxis2={
            "title": "forgetting signal",
            "overlaying": "y",
            "side": "right",
            "range": [-0.05, 1.05],
            "tickvals": [0, 0.5, 1],
            "showgrid": False,
        },  # fmt: skip
        height=380,
        legend=LEGEND_ON_TOP,
    )
    return fig


def per_class_figure(accuracies: Sequence[float], class_names: Sequence[str]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[f"{c}: {n}" for c, n in enumerate(class_names)], y=list(accuracies)))
    fig.update_layout(title="Test accuracy per class", yaxis_range=[0, 1], yaxis_title="accuracy", height=320)
    return fig


def runs_figure(
    rows: Sequence[Mapping],
    metrics: Sequence[str] = ("forget_acc", "retain_acc"),
    title: str = "Forget / retain test accuracy",
) -> go.Figure:
    """``metrics`` (each in [0, 1]) of each (run, model) pair, for comparing runs: rows hold
    ``run`` (a short label), ``method`` and the figures; the x axis groups models by run."""
    df = pd.DataFrame(rows)
    fig = go.Figure()
    for metric in metrics:
        if metric in df and df[metric].notna().any():
            fig.add_trace(go.Bar(x=[df["run"], df["method"]], y=df[metric], name=metric))
    fig.update_layout(barmode="group", height=380, yaxis_range=[0, 1], title=title, legend=LEGEND_ON_TOP)
    return fig


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """An RGB uint8 (H, W, 3) picture of ``heat`` (H, W in [0, 1]) over uint8 ``image`` (C, H, W)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.transpose(image, (1, 2, 0)).astype(np.float32) / 255.0
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return show_cam_on_image(rgb, heat, use_rgb=True, image_weight=0.55)
