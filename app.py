"""UNSIR dashboard: train or load a classifier, unlearn classes, inspect what was forgotten.

Run: ``streamlit run app.py``. Starts on the embedded digits data set (offline, CPU or GPU).
Each page draws the sidebar (links to the pages, and the settings that apply to all of them:
data set, model, device, seed) itself, so it also works when opened first from a link; long
work runs in a background job queue shared by all browser sessions (``unsir_core.jobs``).
"""

import streamlit as st

from ui.layout import PAGES

page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in PAGES], position="hidden")
page.run()
