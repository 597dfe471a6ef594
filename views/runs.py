"""Runs: every stored run, compared on the same charts, exported as an audit report or JSON."""

import json

import pandas as pd
import streamlit as st

from ui import charts
from ui.audit_report import build_report
from ui.layout import page_setup, teaching
from ui.runstore import stored_runs
from unsir_core.errors import UnsirError
from unsir_core.runs import read_run

page_setup("Runs")
teaching(
    "Every experiment is kept as a folder in the dashboard's run store with its config, metrics.json (seed, "
    "library versions, device, git commit) and the unlearned checkpoints. Select runs to compare them, or export "
    "one as a self-contained HTML audit report for a reviewer."
)
runs = stored_runs()
if not runs:
    st.info("No runs yet. Start one on the Unlearn page.")
    st.stop()

rows = []
for r in runs:
    for name, h in r.headline.items():
        rows.append(
            {
                "run": r.path.name,
                "finished": r.finished_at,
                "dataset": r.dataset,
                "model": r.model,
                "forget": ",".join(map(str, r.forget_classes)),
                "seeds": ",".join(map(str, r.seeds)),
                "method": name,
                **h,
            }
        )
st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)

by_name = {r.path.name: r for r in runs}


def short(name: str) -> str:
    """A chart label for a run: its model, forget classes and finishing time (the folder
    name is too long for an axis)."""
    r = by_name[name]
    return f"{r.model} forget {','.join(map(str, r.forget_classes))} @{r.finished_at[11:19]}"


def read(name: str) -> dict | None:
    try:
        return read_run(by_name[name].path)
    except UnsirError as err:  # changed on disk since it was listed
        st.warning(str(err))
        return None


selected = st.multiselect("Compare runs", list(by_name), default=list(by_name)[:1])
if selected:
    compare = [
        {"run": short(name), "method": method, **h} for name in selected for method, h in by_name[name].headline.items()
    ]
    st.plotly_chart(charts.runs_figure(compare), width="stretch")
    distances, audits = {}, []
    for name in selected:
        models = (read(name) or {"models": {}})["models"]
        for method, m in models.items():
            if method != "original" and m.get("layer_distance"):
                distances[f"{short(name)} · {method}"] = m["layer_distance"]
        audits += charts.compare_rows(models, short(name))
    if distances:
        st.plotly_chart(charts.layer_distance_figure(distances), width="stretch")
    if (audit_figure := charts.compare_figure(audits)) is not None:
        st.plotly_chart(audit_figure, width="stretch")

st.subheader("Export")
name = st.selectbox("Run to export", list(by_name))
metrics = read(name)
if metrics is not None:
    c1, c2 = st.columns(2)
    c1.download_button("Audit report (HTML)", build_report(metrics), file_name=f"{name}-report.html", mime="text/html")
    c2.download_button(
        "metrics.json", json.dumps(metrics, indent=2), file_name=f"{name}-metrics.json", mime="application/json"
    )
    st.caption(f"Run folder `{name}` in the run store (`$UNSIR_RUNS_DIR`, by default `runs/dashboard`).")
