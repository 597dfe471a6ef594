"""The frame of every page: the page table, the title line, the help panel, and error messages
fit to show a user.

``app.py`` declares the pages with ``st.navigation`` (from ``views/``, a folder Streamlit does not
discover on its own, so every request, a deep link on a fresh server included, runs ``app.py``)
and draws the sidebar's settings once, before the page; every page begins with
:func:`page_setup`.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from unsir_core.paths import default_cache_dir, default_data_dir

from .state import Settings, settings


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to app.py
    title: str
    icon: str
    default: bool = False


PAGES = [
    PageInfo("views/models.py", "Models", ":material/model_training:", default=True),
    PageInfo("views/unlearn.py", "Unlearn", ":material/delete_sweep:"),
    PageInfo("views/inspect_models.py", "Inspect", ":material/compare:"),
    PageInfo("views/runs.py", "Runs", ":material/history:"),
]


def page_setup(title: str) -> Settings:
    """The browser tab's title, the page's title and a line with the settings in use (the
    sidebar's, drawn by ``app.py``); returns them."""
    st.set_page_config(page_title=f"{title} · UNSIR unlearning", page_icon=":material/delete_sweep:", layout="wide")
    s = settings()
    st.title(title)
    st.caption(f"{s.dataset} · {s.model} · seed {s.seed} · {s.recipes} recipe · device **{s.device_used}**")
    return s


def teaching(text: str) -> None:
    """A short, collapsible explanation of what the page shows."""
    with st.expander("What am I looking at?"):
        st.markdown(text)


def user_message(err: Exception) -> str:
    """An error's message for the page, with the server's folders named rather than shown."""
    text = str(err)
    for folder, name in ((default_cache_dir(), "the checkpoint cache"), (default_data_dir(), "the data directory")):
        text = text.replace(str(folder.expanduser().resolve()), name).replace(str(folder), name)
    return text
