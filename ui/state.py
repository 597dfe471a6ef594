"""Session state: every key the dashboard keeps per browser session, and the sidebar settings
(data set, model, device, seed) that apply to every page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import streamlit as st
import torch

from unsir_core import list_datasets, list_models, resolve_device
from unsir_core.datasets import dataset_present, dataset_spec
from unsir_core.recipes import RECIPE_SETS, TrainConfig, default_recipe


class Keys:
    """Session-state keys (one place, so pages cannot drift apart)."""

    SESSION = "session_id"  # this browser session's id, the owner of its jobs
    DATASET = "dataset"  # sidebar: data set name
    FOLDER = "imagefolder_path"  # sidebar: an image folder's name inside the data directory
    MODEL = "model"  # sidebar: architecture
    DEVICE = "device"  # sidebar: auto / cpu / cuda / mps
    SEED = "seed"  # sidebar: seed of training and unlearning
    RECIPES = "recipes"  # sidebar: the training recipe set of the original and retrained models
    UPLOADED = "uploaded_checkpoint"  # an uploaded original checkpoint and what it is for, or absent
    LAST_RUN = "last_run"  # run folder of this session's latest finished experiment
    INSPECT_RUN = "inspect_run"  # run chosen on the Inspect page


# The official recipes by default: they are the paper's, and UNSIR's defaults for them are
# measured on every class with three seeds; the fast set's own (gentler) UNSIR defaults on fewer
# runs (bench/results). The small data sets' recipes are the same in both sets.
DEFAULT_RECIPES = "official"

DEVICES = (
    ["auto", "cpu"]
    + (["cuda"] if torch.cuda.is_available() else [])
    + (["mps"] if torch.backends.mps.is_available() else [])
)


@dataclass(frozen=True)
class Settings:
    dataset: str
    folder: str | None  # for a data set read from a user's folder: its name in the data directory
    model: str
    device: str
    seed: int
    uploaded: str | None  # an uploaded original checkpoint for this data set and model
    recipes: str = DEFAULT_RECIPES  # the training recipe set (see unsir_core.recipes)

    @property
    def device_used(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def recipe(self) -> TrainConfig:
        """How the original and retrained models are trained for these settings."""
        return default_recipe(self.dataset, self.model, self.recipes)


def session_id() -> str:
    if Keys.SESSION not in st.session_state:
        st.session_state[Keys.SESSION] = uuid.uuid4().hex
    return st.session_state[Keys.SESSION]


def settings() -> Settings:
    ss = st.session_state
    s = Settings(
        dataset=ss.get(Keys.DATASET, "digits"),
        folder=ss.get(Keys.FOLDER) or None,
        model=ss.get(Keys.MODEL, "resnet18"),
        device=ss.get(Keys.DEVICE, "auto"),
        seed=int(ss.get(Keys.SEED, 0)),
        uploaded=None,
        recipes=ss.get(Keys.RECIPES, DEFAULT_RECIPES),
    )
    uploaded = ss.get(Keys.UPLOADED)
    if uploaded and uploaded.get("for") == (s.dataset, s.folder, s.model):
        s = replace(s, uploaded=uploaded["path"])
    return s


def _default(key: str, **default) -> dict:
    """The widget's default, unless the session already holds its value (giving both makes
    Streamlit warn)."""
    return {} if key in st.session_state else default


def _dataset_label(name: str) -> str:
    """The data set's name, marked when its files are not on this machine (it then needs a download)."""
    return f"{name} (download)" if dataset_present(name) is False else name


def settings_widgets() -> Settings:
    """The sidebar's settings widgets; returns the settings they give. ``app.py`` draws them on
    every run, before the page, so their values outlive a page switch."""
    ss = st.session_state
    datasets = list_datasets()
    st.sidebar.selectbox(
        "Data set",
        datasets,
        key=Keys.DATASET,
        format_func=_dataset_label,
        help="digits is embedded and works offline; CIFAR needs its archive in the data directory "
        "(or internet); fashionmnist is read from there or from Debian's package "
        "(`apt-get install -y dataset-fashion-mnist`, offline); imagefolder reads a folder with one "
        "sub-folder per class. A data set marked 'download' is not on this machine.",
        **_default(Keys.DATASET, index=datasets.index("digits")),
    )
    if dataset_spec(ss[Keys.DATASET]).user_folder:
        st.sidebar.text_input(
            "Image folder",
            key=Keys.FOLDER,
            help="the name of a folder inside the data directory, one sub-folder per class",
        )
    models = list_models()
    st.sidebar.selectbox("Model", models, key=Keys.MODEL, **_default(Keys.MODEL, index=models.index("resnet18")))
    st.sidebar.selectbox(
        "Device", DEVICES, key=Keys.DEVICE, help="auto: CUDA, then Apple MPS, then CPU (only what is present is listed)"
    )
    st.sidebar.selectbox(
        "Training recipe",
        list(RECIPE_SETS),
        key=Keys.RECIPES,
        help="how the original and retrained models are trained: official (the UNSIR notebook's, as in the paper) "
        "or fast (one-cycle SGD with augmentation and bf16: about a sixth of the official time for CIFAR-10 "
        "ResNet18, as accurate). UNSIR's defaults follow the set: a fast-recipe model takes a gentler impair and "
        "repair (docs/recipes.md). The embedded digits set trains the same with both.",
        **_default(Keys.RECIPES, index=list(RECIPE_SETS).index(DEFAULT_RECIPES)),
    )
    st.sidebar.number_input(
        "Seed", min_value=0, step=1, key=Keys.SEED, help="model init, batches, noise", **_default(Keys.SEED, value=0)
    )
    s = settings()
    st.sidebar.markdown(f"Device in use: **{s.device_used}**")
    if s.uploaded:
        st.sidebar.caption("Original: an uploaded checkpoint")
    return s
