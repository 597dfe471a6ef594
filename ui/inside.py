"""Charts of what lies inside the models of a run (plotly; pure functions of metrics.json
content, shared by the Inspect page and the audit report): the representation probe, CKA per
block, the feature maps and the confusion matrices. Their teaching texts are the metrics' own
(``unsir_core.evaluation``, each metric's presentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .charts import LEGEND_ON_TOP, colour

FORGET_COLOURS = ["#111111", "#7a0177", "#b10026", "#00441b"]  # the forget classes, dark, each its own


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    """Rows and columns for ``n`` panels, at most ``cols`` a row."""
    return max(1, -(-n // cols)), max(1, min(n, cols))


def probe_figure(models: Mapping[str, Mapping]) -> go.Figure:
    """Forget-class test accuracy of the linear and k-NN probes per model, with chance."""
    names = [n for n, m in models.items() if m.get("probe")]
    fig = go.Figure()
    for kind, pattern in (("linear", ""), ("knn", "/")):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[models[n]["probe"][kind]["forget"] for n in names],
                name=f"{kind} probe, forget class",
                marker={"color": [colour(n) for n in names], "pattern": {"shape": pattern}},
            )
        )
    # the retained classes under the same probe: features that lost everything would look "erased" too
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[models[n]["probe"]["linear"]["retain"] for n in names],
            mode="markers",
            marker={"symbol": "diamond", "size": 12, "color": "#333333"},
            name="linear probe, retained classes",
        )
    )
    chance = next((models[n]["probe"]["linear"]["chance"] for n in names), None)
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", annotation_text="chance")
    fig.update_layout(
        title="Is the forget class still decodable from the features? (probe accuracy on test images)",
        barmode="group",
        yaxis_range=[0, 1.05],
        yaxis_title="probe accuracy",
        height=380,
        legend=LEGEND_ON_TOP,
    )
    return fig


def cka_figure(models: Mapping[str, Mapping], group: str = "forget") -> go.Figure:
    """CKA per block of each model against the original (left) and the retrained model
    (right), on the fixed ``group`` ("forget" or "retain") test images."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs the original model", "vs the retrained model"))
    shown: set[str] = set()  # one legend entry per model
    for col, reference in ((1, "original"), (2, "retrained")):
        for name, m in models.items():
            series = (m.get("cka") or {}).get(group, {}).get(reference)
            if not series or name == reference:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(series),
                    y=list(series.values()),
                    mode="lines+markers",
                    name=name,
                    line={"color": colour(name)},
                    legendgroup=name,
                    showlegend=name not in shown,
                ),
                row=1,
                col=col,
            )
            shown.add(name)
    fig.update_yaxes(range=[0, 1.05], title_text="linear CKA", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_layout(
        title=f"Representation similarity per block ({group}-class test images)", height=400, legend=LEGEND_ON_TOP
    )
    return fig


def feature_map_figure(models: Mapping[str, Mapping], class_names: Sequence[str], forget: Sequence[int]) -> go.Figure:
    """The 2-D feature maps side by side (three a row), points coloured by true class, forget
    classes large and dark."""
    names = [n for n, m in models.items() if m.get("feature_map")]
    rows, cols = _grid(len(names))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    palette = [
        "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
    ]  # fmt: skip
    for i, name in enumerate(names):
        fmap = models[name]["feature_map"]
        for c in sorted(set(fmap["label"])):
            idx = [i for i, label in enumerate(fmap["label"]) if label == c]
            fig.add_trace(
                go.Scattergl(
                    x=[fmap["x"][i] for i in idx],
                    y=[fmap["y"][i] for i in idx],
                    mode="markers",
                    name=f"{c}: {class_names[c]}" + (" (forget)" if c in forget else ""),
                    legendgroup=str(c),
                    showlegend=i == 0,
                    marker={
                        "size": 8 if c in forget else 4,
                        "color": FORGET_COLOURS[forget.index(c) % len(FORGET_COLOURS)]
                        if c in forget
                        else palette[c % len(palette)],
                        "opacity": 0.9 if c in forget else 0.5,
                    },
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_layout(title="Penultimate features of the same test images (PCA)", height=400 * rows)
    return fig


def confusion_figure(models: Mapping[str, Mapping], class_names: Sequence[str]) -> go.Figure:
    """The confusion matrices side by side, three a row (row-normalised, so each true class
    sums to 1)."""
    names = [n for n, m in models.items() if m.get("confusion_matrix")]
    rows, cols = _grid(len(names))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.06)
    labels = [f"{c}: {n}" for c, n in enumerate(class_names)]
    for i, name in enumerate(names):
        row, col = i // cols + 1, i % cols + 1
        matrix = models[name]["confusion_matrix"]
        normalised = [[v / max(sum(counts), 1) for v in counts] for counts in matrix]
        fig.add_trace(
            go.Heatmap(
                z=normalised,
                x=labels,
                y=labels,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=i == 0,
                customdata=matrix,
                hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata:.1f} images (%{z:.2f})<extra></extra>",
            ),
            row=row,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=row, col=col, showticklabels=col == 1)
    fig.update_layout(
        title="Confusion matrices on the test split (rows: true class; mean over seeds)", height=420 * rows
    )
    return fig
