"""How a metric is shown: the presentation contract every metric declares at its registration.

A metric's :class:`Presentation` gives its table columns (each a number read from one model's
metrics.json entry, with one label and a kind that decides its format), the charts that draw it
(names of chart kinds, drawn by the dashboard's ``ui.charts.CHARTS``), where they belong
(``outputs`` or ``inside`` the model) and its teaching text. The Inspect page, the Runs
comparison, the HTML audit report and bench's audit tables all read it from the metric registry
(``evaluation.table_columns``, ``evaluation.presentations``), so a new metric is shown
everywhere by its module and its registration alone.

Nothing here imports plotting or Streamlit: the core stays free of both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Where a column is shown: the dashboard's summary table (Inspect page, audit report), the Runs
# page's comparison of audit figures, bench's audit tables. bench/audit.py stores every column.
SUMMARY = "summary"
COMPARE = "compare"
BENCH = "bench"

# How a column's number is written: a fraction (accuracy, rate; bench writes it in percent), a
# count (whole), seconds, or a score with ``digits`` decimals.
KINDS = ("fraction", "count", "seconds", "score")


def dig(*path: str) -> Callable[[Mapping], float | None]:
    """A getter of the number at ``path`` inside one model's entry (None where a level is missing)."""

    def get(entry: Mapping) -> float | None:
        value = entry
        for key in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    return get


@dataclass(frozen=True)
class Column:
    key: str  # the figure's flat name in bench's JSON (e.g. "probe_linear_forget")
    label: str  # its one label in every table
    get: Callable[[Mapping], float | None]  # one model's metrics.json entry -> the number
    kind: str = "fraction"  # one of KINDS
    digits: int = 3  # decimals of a "score" in bench's tables (the dashboard shows 4)
    show: tuple[str, ...] = (SUMMARY, BENCH)  # where it is shown (bench/audit.py stores it anyway)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key!r}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Presentation:
    columns: tuple[Column, ...] = ()
    charts: tuple[str, ...] = ()  # chart kinds (ui.charts.CHARTS) that draw the metric
    section: str = "inside"  # "outputs" (what the model answers) or "inside" (what lies inside it)
    teaching: str = ""  # what the figure means and what forgetting looks like there, in a sentence or two
    summary: str = ""  # a few words for a list of metrics to pick from
    # Text beside the numbers that bench stores with them (e.g. which block a CKA figure is from).
    notes: Callable[[Mapping], Mapping[str, str]] | None = None


# The columns every model has, whatever metrics were chosen: accuracies before the metrics'
# columns, wall time after them.
ACCURACY_COLUMNS = (
    Column("forget_acc", "forget acc (test)", dig("forget_acc")),
    Column("retain_acc", "retain acc (test)", dig("retain_acc")),
    Column("forget_acc_train", "forget acc (train)", dig("forget_acc_train")),
    Column("retain_acc_train", "retain acc (train)", dig("retain_acc_train"), show=(SUMMARY,)),
)
SECONDS_COLUMN = Column("seconds", "seconds", dig("seconds"), kind="seconds")


def format_summary(column: Column, value) -> str:
    """A number as the dashboard's tables show it: fractions and scores to 4 decimals, counts
    whole, seconds to 0.1 s; "-" where there is none."""
    if isinstance(value, str):
        return value
    if value is None or value != value:  # None or NaN
        return "-"
    if column.kind == "count":
        return f"{value:.0f}"
    if column.kind == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"


def format_bench(column: Column, value: float) -> str:
    """A number as bench's markdown tables write it: fractions in percent (1 decimal)."""
    if column.kind == "fraction":
        return f"{100 * value:.1f}"
    if column.kind in ("count", "seconds"):
        return f"{value:.0f}"
    return f"{value:.{column.digits}f}"


def bench_label(column: Column) -> str:
    return column.label + (" %" if column.kind == "fraction" else "")
