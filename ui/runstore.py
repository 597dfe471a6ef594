"""The dashboard's run store: where its runs are kept, and the runs in it for a page to show."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import streamlit as st

from unsir_core.runs import RunSummary, list_runs


def runs_root() -> Path:
    """Where the dashboard keeps its runs: $UNSIR_RUNS_DIR, or runs/dashboard."""
    return Path(os.environ.get("UNSIR_RUNS_DIR", "runs/dashboard"))


def stored_runs() -> list[RunSummary]:
    """Every readable run, newest first; the page says which folders were skipped and why."""
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        runs = list_runs(runs_root())
    if skipped:
        with st.expander(f"{len(skipped)} run folder(s) skipped: unreadable metrics.json"):
            for w in skipped:
                st.caption(str(w.message))
    return runs
