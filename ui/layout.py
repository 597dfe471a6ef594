"""The frame of every page: the page table, the sidebar (links to the pages and the shared
settings), the title line, the help panel, and error messages fit to show a user.

Every page begins with :func:`page_setup`, so a page renders the same whether ``app.py``
runs it through ``st.navigation`` or a fresh server runs it first from a deep link (Streamlit
then runs files in ``pages/`` on their own: see ``.streamlit/config.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from unsir_core.paths import default_cache_dir, default_data_dir

from .state import Settings, settings_widgets


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to app.py
    title: str
    icon: str
    default: bool = False


PAGES = [
    PageInfo("pages/models.py", "Models", ":material/model_training:", default=True),
    PageInfo("pages/unlearn.py", "Unlearn", ":material/delete_sweep:"),
    PageInfo("pages/inspect_models.py", "Inspect", ":material/compare:"),
    PageInfo("pages/runs.py", "Runs", ":material/history:"),
]


def page_setup(title: str) -> Settings:
    """Page config, the sidebar, the title and a line with the settings in use; returns them."""
    st.set_page_config(page_title=f"{title} · UNSIR unlearning", page_icon=":material/delete_sweep:", layout="wide")
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.path, label=page.title, icon=page.icon)
        st.divider()
    s = settings_widgets(title)
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
