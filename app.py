"""UNSIR dashboard: train or load a classifier, unlearn classes, inspect what was forgotten.

Run: ``streamlit run app.py``. Starts on the embedded digits data set (offline, CPU or GPU).
The sidebar's settings (data set, model, device, seed) apply to every page; long work runs in
a background job queue shared by all browser sessions (see ``unsir_core.jobs``).
"""

import streamlit as st

from pages.common import sidebar

st.set_page_config(page_title="UNSIR unlearning", page_icon=":material/delete_sweep:", layout="wide")

PAGES = [
    st.Page("pages/models.py", title="Models", icon=":material/model_training:", default=True),
    st.Page("pages/unlearn.py", title="Unlearn", icon=":material/delete_sweep:"),
    st.Page("pages/inspect_models.py", title="Inspect", icon=":material/compare:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    sidebar()
page.run()
