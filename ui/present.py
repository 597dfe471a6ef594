"""A run's metrics as the metric registry says to show them: the chart kinds each metric names
(``unsir_core.presentation``), and the figures and teaching text of the metrics a run measured,
in registration order. The Inspect page and the HTML audit report draw what :func:`measured`
gives; a new chart kind is one entry in :data:`CHARTS`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from unsir_core.evaluation import presentations
from unsir_core.presentation import Presentation

from . import charts, inside

# (models that have the metric: name -> metrics.json entry, class names, forget classes, the
# metric's presentation) -> its figures (none when there is nothing to draw).
ChartFn = Callable[[Mapping[str, Mapping], Sequence[str], Sequence[int], Presentation], list[go.Figure]]


def _layer_distance(models, names, forget, present) -> list[go.Figure]:
    series = {k: m["layer_distance"] for k, m in models.items() if k != "original"}  # the original's is 0
    return [charts.layer_distance_figure(series)] if series else []


def _predictions(models, names, forget, present) -> list[go.Figure]:
    series = {k: m["prediction_distribution"] for k, m in models.items()}
    return [charts.prediction_figure(series, names, forget)]


def _bars(models, names, forget, present) -> list[go.Figure]:
    """Each of a metric's columns, one bar per model: for a metric without a chart of its own."""
    return [charts.model_bars({k: c.get(m) for k, m in models.items()}, c.label) for c in present.columns]


CHARTS: dict[str, ChartFn] = {
    "layer_distance": _layer_distance,
    "predictions": _predictions,
    "probe": lambda models, names, forget, p: [inside.probe_figure(models)],
    "cka": lambda models, names, forget, p: [inside.cka_figure(models, group) for group in ("forget", "retain")],
    "feature_map": lambda models, names, forget, p: [inside.feature_map_figure(models, names, forget)],
    "confusion": lambda models, names, forget, p: [inside.confusion_figure(models, names)],
    "bars": _bars,
}


@dataclass(frozen=True)
class Shown:
    key: str  # the metric's metrics.json key
    section: str  # "outputs" or "inside"
    figures: list[go.Figure]  # empty for a metric shown in the tables only
    teaching: str


def measured(
    models: Mapping[str, Mapping], names: Sequence[str], forget: Sequence[int], section: str | None = None
) -> list[Shown]:
    """Each metric that some model of ``models`` has (in ``section``, or in any), with its figures."""
    shown = []
    for key, present in presentations().items():
        having = {k: m for k, m in models.items() if m.get(key) is not None}
        if not having or (section and present.section != section):
            continue
        figures = [fig for kind in present.charts for fig in CHARTS[kind](having, names, forget, present)]
        shown.append(Shown(key, present.section, figures, present.teaching))
    return shown


def not_measured(models: Mapping[str, Mapping], section: str) -> list[str]:
    """The keys of the metrics of ``section`` that no model of ``models`` has."""
    return [
        key
        for key, present in presentations().items()
        if present.section == section and not any(m.get(key) is not None for m in models.values())
    ]


def metrics_help() -> str:
    """A line per section naming each metric users can pick and what it measures."""
    by_name = presentations(by="name")
    outputs = "; ".join(f"{name}: {p.summary}" for name, p in by_name.items() if p.section == "outputs")
    inside = "; ".join(f"{name}: {p.summary}" for name, p in by_name.items() if p.section == "inside")
    return f"{outputs}. Inside the model (slower): {inside}."
