"""UNSIR dashboard: train or load a classifier, unlearn classes, inspect what was forgotten.

Run: ``streamlit run app.py``. Starts on the embedded digits data set (offline, CPU or GPU).
The pages (``views/``) are declared here with Streamlit's navigation, and the sidebar's settings
that apply to all of them (data set, model, device, recipe set, seed) are drawn here once, under
the links, so they keep their values from page to page; long work runs in a background job queue
shared by all browser sessions (``unsir_core.jobs``).
"""

import streamlit as st

from ui.layout import PAGES
from ui.state import settings_widgets

page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in PAGES])
settings_widgets()
page.run()
