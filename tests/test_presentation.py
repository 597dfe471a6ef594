"""The presentation contract: a metric declares its columns, charts and teaching text at its
registration, and every place that shows metrics reads them from there."""

import html
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unsir_core.evaluation import presentations, register_metric, table_columns, unregister_metric
from unsir_core.presentation import BENCH, COMPARE, SUMMARY, Column, Presentation, dig, format_bench, format_summary
from unsir_core.train import predict

from .conftest import QUICK_ALL

ROOT = Path(__file__).resolve().parents[1]
TEACHING = "Toy: the mean of the first logit over the forget class's test images."


@pytest.fixture
def toy_metric():
    """A metric of a plug-in: its function and its registration, nothing else."""

    @register_metric(
        "toy",
        "toy",
        present=Presentation(
            columns=(Column("toy_logit", "toy first logit", dig("toy"), "score", show=(SUMMARY, COMPARE, BENCH)),),
            charts=("bars",),
            teaching=TEACHING,
            summary="the first logit",
        ),
    )
    def _toy(model, ctx) -> float:
        return float(predict(model, ctx.splits.forget_test.images, ctx.data.normalize, ctx.device)[:, 0].mean())

    yield "toy"
    unregister_metric("toy")


def test_a_metric_registered_in_one_place_is_shown_everywhere(toy_metric, tmp_path, monkeypatch):
    from unsir_core.cli import main
    from unsir_core.runs import read_run

    runs = tmp_path / "runs"
    monkeypatch.setenv("UNSIR_RUNS_DIR", str(runs))
    out = runs / "toy"
    main(
        ["experiment", "--dataset", "digits", "--model", "resnet18", "--forget", "4", "--metrics", "toy"]
        + ["--out", str(out), *QUICK_ALL]
    )
    metrics = read_run(out)
    assert all(isinstance(m["toy"], float) for m in metrics["models"].values())  # measured on every model

    # the Inspect page: its column in the numbers, its chart with the teaching text
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("views/inspect_models.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert "toy first logit" in table.columns and table.loc["unsir", "toy first logit"] != "-"
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "toy first logit" in titles
    assert TEACHING in " ".join(str(c.value) for c in at.caption)

    # the Unlearn page offers it, with its summary
    at.switch_page("views/unlearn.py").run()
    picker = next(m for m in at.multiselect if m.label == "Metrics beyond accuracy")
    assert "toy" in picker.options and "toy: the first logit" in picker.help

    # the Runs page compares it across runs
    at.switch_page("views/runs.py").run()
    assert not at.exception, at.exception
    assert any("toy first logit" in json.dumps(json.loads(c.proto.spec)) for c in at.get("plotly_chart"))

    # the HTML audit report
    from ui.audit_report import build_report

    report = build_report(metrics)
    assert "toy first logit" in report and html.escape(TEACHING) in report

    # bench: the audit stores the figure and its tables show it
    from bench import audit
    from bench import report as bench_report

    figures = {name: audit.figures(m) for name, m in metrics["models"].items()}
    assert figures["unsir"]["toy_logit"] == metrics["models"]["unsir"]["toy"]
    summary = {"models": {name: {k: {"mean": v, "std": 0.0} for k, v in f.items() if v} for name, f in figures.items()}}
    assert "toy_logit" in [c.key for c in bench_report.measured_figures(summary)]


def test_the_registry_declares_a_presentation_for_every_metric():
    keys = presentations()
    assert {"prediction_distribution", "layer_distance", "mia", "probe", "cka", "tow"} <= set(keys)
    for key, present in keys.items():
        assert present.section in ("outputs", "inside"), key
        assert present.teaching and present.summary, f"{key} has no teaching text or summary"
        assert present.columns or present.charts, f"{key} is shown nowhere"
    labels = [c.label for c in table_columns()]
    assert len(labels) == len(set(labels)), "one label per column"
    assert [c.key for c in table_columns()][:2] == ["forget_acc", "retain_acc"]
    assert table_columns()[-1].key == "seconds"


def test_each_kind_of_column_has_its_format():
    fraction = Column("a", "a", dig("a"))
    steps = Column("s", "steps", dig("s"), kind="count")
    seconds = Column("t", "t", dig("t"), kind="seconds")
    score = Column("z", "z", dig("z"), kind="score", digits=2)
    assert [format_summary(c, v) for c, v in ((fraction, 0.97297), (steps, 10.0), (seconds, 13.27), (score, 1))] == [
        "0.9730",
        "10",
        "13.3",
        "1.0000",
    ]
    assert format_summary(fraction, None) == "-" and format_summary(fraction, float("nan")) == "-"
    assert [format_bench(c, v) for c, v in ((fraction, 0.97297), (steps, 10.0), (score, 0.5))] == ["97.3", "10", "0.50"]
    with pytest.raises(ValueError, match="kind"):
        Column("x", "x", dig("x"), kind="percent")
    assert dig("a", "b")({"a": {"b": 2}}) == 2 and dig("a", "b")({"a": None}) is None
