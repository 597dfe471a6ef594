"""Cached loaders: data sets, models from checkpoints, test-set predictions and GradCAM
heatmaps, shared by every browser session (Streamlit's caches are process-wide).

Cached models are only read: nothing trains them further, so no session can change another's
model. A data set is keyed by ``(name, folder, image size)``; the folder of a data set read
from a user's folder (imagefolder) must lie inside the data directory.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from unsir_core import load_dataset
from unsir_core.data import DataBundle
from unsir_core.datasets import dataset_spec
from unsir_core.errors import UnsirError
from unsir_core.explain import gradcam
from unsir_core.model_cache import checkpoint_model, model_cache_path
from unsir_core.paths import default_cache_dir, default_data_dir, inside
from unsir_core.train import predict

from .layout import user_message
from .state import Settings

DataKey = tuple[str, str | None, int]  # (data set, folder or None for the shared data directory, image size)
CPU = torch.device("cpu")


@st.cache_resource(show_spinner="Loading the data set...")
def load_data(name: str, folder: str | None, image_size: int = 32) -> DataBundle:
    return load_dataset(name, folder, image_size=image_size)


def user_folder(name: str) -> Path:
    """The folder ``name`` inside the data directory (an :class:`UnsirError` for a name
    that leads outside it or does not exist); its location on the server is never shown."""
    path = inside(default_data_dir(), name, what="image folder")
    try:
        is_dir = path.is_dir()
    except OSError:  # e.g. a name too long for the file system
        is_dir = False
    if not is_dir:
        raise UnsirError(f"there is no image folder {name!r} in the data directory")
    return path


def settings_data(s: Settings) -> DataKey:
    """The data set the sidebar settings choose."""
    folder = str(user_folder(s.folder)) if dataset_spec(s.dataset).user_folder else None
    return s.dataset, folder, 32


def run_data(cfg: dict) -> DataKey:
    """The data set a run's config (metrics.json) was made with."""
    folder = None
    if dataset_spec(cfg["dataset"]).user_folder:
        folder = str(user_folder(cfg.get("data_dir") or ""))
    return cfg["dataset"], folder, int(cfg.get("image_size", 32))


def data_or_stop(s: Settings) -> DataBundle:
    """The chosen data set, or a clear message in the page and a stop."""
    if dataset_spec(s.dataset).user_folder and not s.folder:
        st.info(
            "Enter the path of an ImageFolder data set in the sidebar: the name of a folder in the data "
            "directory ($UNSIR_DATA_DIR), with one sub-folder per class."
        )
        st.stop()
    try:
        return load_data(*settings_data(s))
    except UnsirError as err:
        st.error(f"The data set cannot be loaded: {user_message(err)}")
        st.stop()


def original_path(s: Settings, data: DataBundle) -> Path:
    """The checkpoint the experiment will use as the original model."""
    if s.uploaded:
        return Path(s.uploaded)
    recipe = s.recipe
    path, _ = model_cache_path(
        data, s.model, recipe, range(data.num_classes), seed=s.seed, cache_dir=default_cache_dir()
    )
    return path


@st.cache_resource(max_entries=8, show_spinner="Loading a model...")
def _model(path: str, mtime: float, model_name: str, data: DataKey) -> torch.nn.Module:
    model, _ = checkpoint_model(path, model_name, load_data(*data), CPU)
    return model


def model_at(path: str | Path, model_name: str, data: DataKey) -> torch.nn.Module:
    """The ``model_name`` model in the checkpoint at ``path`` (cached per file and
    modification time); a checkpoint that does not fit raises a CheckpointError."""
    path = Path(path)
    return _model(str(path), path.stat().st_mtime, model_name, data)


@st.cache_data(max_entries=16, show_spinner="Evaluating...")
def test_logits(path: str, mtime: float, model_name: str, data: DataKey) -> np.ndarray:
    bundle = load_data(*data)
    return predict(_model(path, mtime, model_name, data), bundle.test.images, bundle.normalize, CPU).numpy()


_GRADCAM_LOCK = threading.Lock()  # GradCAM hooks the model: one computation per model object at a time


@st.cache_data(max_entries=64, show_spinner="GradCAM...")
def heatmaps(
    path: str, mtime: float, model_name: str, data: DataKey, indices: tuple[int, ...]
) -> tuple[np.ndarray, list[int]]:
    """GradCAM heatmaps (for each image's true class) and the predictions of the checkpoint's
    model on the test images ``indices``; cached, so that a rerun of the page redraws at once."""
    bundle = load_data(*data)
    model = _model(path, mtime, model_name, data)
    images, labels = bundle.test.images[list(indices)], bundle.test.labels[list(indices)]
    with _GRADCAM_LOCK, torch.enable_grad():
        heat = gradcam(model, model_name, images, bundle.normalize, CPU, targets=labels.tolist())
    with torch.no_grad():
        preds = model(bundle.normalize(images)).argmax(1).tolist()
    return heat, preds
