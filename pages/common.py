"""What every dashboard page shares: session-state keys, the sidebar settings, the job queue,
cached data and models, and small drawing helpers.

Pages stay thin: they read widgets, call ``unsir_core`` through the helpers here, and draw.
Every session-state key used anywhere in the dashboard is listed in :class:`Keys`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from unsir_core import list_datasets, list_models, load_dataset, resolve_device
from unsir_core.checkpoints import default_cache_dir
from unsir_core.data import DataBundle
from unsir_core.errors import UnsirError
from unsir_core.experiment import (
    ExperimentConfig,
    checkpoint_model,
    dataset_options,
    model_cache_path,
    run_experiment,
    trained_model,
    write_results,
)  # fmt: skip
from unsir_core.explain import gradcam
from unsir_core.jobs import Job, JobQueue
from unsir_core.train import default_recipe, predict


class Keys:
    """Session-state keys (one place, so pages cannot drift apart)."""

    SESSION = "session_id"  # this browser session's id, the owner of its jobs
    DATASET = "dataset"  # sidebar: data set name
    FOLDER = "imagefolder_path"  # sidebar: root of an ImageFolder data set
    MODEL = "model"  # sidebar: architecture
    DEVICE = "device"  # sidebar: auto / cpu / cuda / mps
    SEED = "seed"  # sidebar: seed of training and unlearning
    UPLOADED = "uploaded_checkpoint"  # path of an uploaded original checkpoint, or absent
    LAST_RUN = "last_run"  # run directory of this session's latest finished experiment
    INSPECT_RUN = "inspect_run"  # run chosen on the Inspect page


def runs_root() -> Path:
    """Where the dashboard keeps its runs: $UNSIR_RUNS_DIR, or runs/dashboard."""
    return Path(os.environ.get("UNSIR_RUNS_DIR", "runs/dashboard"))


DEVICES = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if torch.backends.mps.is_available() else []
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    dataset: str
    folder: str | None
    model: str
    device: str
    seed: int
    uploaded: str | None  # an uploaded original checkpoint for this data set and model

    @property
    def device_used(self) -> torch.device:
        return resolve_device(self.device)


def session_id() -> str:
    if Keys.SESSION not in st.session_state:
        st.session_state[Keys.SESSION] = uuid.uuid4().hex
    return st.session_state[Keys.SESSION]


def sidebar() -> None:
    """The settings every page uses, drawn once in app.py so that all pages show them."""
    datasets = list_datasets()
    st.sidebar.selectbox(
        "Data set", datasets, index=datasets.index("digits"), key=Keys.DATASET,
        help="digits is embedded and works offline; CIFAR needs its archive in the data directory "
        "(or internet); imagefolder reads a folder with one sub-folder per class.",
    )  # fmt: skip
    if st.session_state[Keys.DATASET] == "imagefolder":
        st.sidebar.text_input("ImageFolder path", key=Keys.FOLDER, help="a folder with one sub-folder per class")
    models = list_models()
    st.sidebar.selectbox("Model", models, index=models.index("resnet18"), key=Keys.MODEL)
    st.sidebar.selectbox(
        "Device", DEVICES, key=Keys.DEVICE, help="auto: CUDA, then Apple MPS, then CPU (only what is present is listed)"
    )
    st.sidebar.number_input("Seed", min_value=0, value=0, step=1, key=Keys.SEED, help="model init, batches, noise")
    s = settings()
    st.sidebar.markdown(f"Device in use: **{s.device_used}**")
    if s.uploaded:
        st.sidebar.caption(f"Original: uploaded `{Path(s.uploaded).name}`")


def settings() -> Settings:
    ss = st.session_state
    uploaded = ss.get(Keys.UPLOADED)
    s = Settings(
        dataset=ss.get(Keys.DATASET, "digits"), folder=ss.get(Keys.FOLDER) or None,
        model=ss.get(Keys.MODEL, "resnet18"),
        device=ss.get(Keys.DEVICE, "auto"), seed=int(ss.get(Keys.SEED, 0)), uploaded=None,
    )  # fmt: skip
    if uploaded and uploaded.get("for") == (s.dataset, s.folder, s.model):
        s = replace(s, uploaded=uploaded["path"])
    return s


def header(title: str) -> Settings:
    """The page title, the settings in use (data set, model, device) and the settings."""
    st.title(title)
    s = settings()
    st.caption(f"{s.dataset} · {s.model} · seed {s.seed} · device **{s.device_used}**")
    return s


def teaching(text: str) -> None:
    """A short, collapsible explanation of what the page shows."""
    with st.expander("What am I looking at?"):
        st.markdown(text)


# --- data and models ---------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the data set...")
def _load(name: str, folder: str | None) -> DataBundle:
    return load_dataset(name, folder if name == "imagefolder" else None, **dataset_options(name, 32))


def data_or_stop(s: Settings) -> DataBundle:
    """The chosen data set, or a clear message in the page and a stop."""
    if s.dataset == "imagefolder" and not s.folder:
        st.info("Enter the path of an ImageFolder data set in the sidebar (one sub-folder per class).")
        st.stop()
    try:
        return _load(s.dataset, s.folder)
    except UnsirError as err:
        st.error(f"The data set cannot be loaded: {err}")
        st.stop()


def cache_dir() -> Path:
    return default_cache_dir()


def original_path(s: Settings, data: DataBundle) -> Path:
    """The checkpoint the experiment will use as the original model."""
    if s.uploaded:
        return Path(s.uploaded)
    path, _ = model_cache_path(
        data, s.model, default_recipe(s.dataset, s.model), range(data.num_classes), seed=s.seed, cache_dir=cache_dir()
    )
    return path


@st.cache_resource(max_entries=8, show_spinner="Loading a model...")
def load_model(path: str, mtime: float, model_name: str, dataset: str, folder: str | None) -> torch.nn.Module:
    """A model read from a checkpoint (cached per file and modification time). Pages only
    read it: it is never trained further, so no session can change another's model."""
    model, _ = checkpoint_model(path, model_name, _load(dataset, folder), torch.device("cpu"))
    return model


def model_at(path: str | Path, s: Settings) -> torch.nn.Module:
    path = Path(path)
    return load_model(str(path), path.stat().st_mtime, s.model, s.dataset, s.folder)


@st.cache_data(max_entries=16, show_spinner="Evaluating...")
def test_logits(path: str, mtime: float, model_name: str, dataset: str, folder: str | None) -> np.ndarray:
    data = _load(dataset, folder)
    model = load_model(path, mtime, model_name, dataset, folder)
    return predict(model, data.test.images, data.normalize, torch.device("cpu")).numpy()


_GRADCAM_LOCK = threading.Lock()  # GradCAM hooks the model: one computation per model object at a time


@st.cache_data(max_entries=64, show_spinner="GradCAM...")
def heatmaps(
    path: str, mtime: float, model_name: str, dataset: str, folder: str | None, indices: tuple[int, ...]
) -> tuple[np.ndarray, list[int]]:
    """GradCAM heatmaps (for each image's true class) and the predictions of the checkpoint's
    model on the test images ``indices``; cached, so that a rerun of the page redraws at once."""
    data = _load(dataset, folder)
    model = load_model(path, mtime, model_name, dataset, folder)
    images, labels = data.test.images[list(indices)], data.test.labels[list(indices)]
    with _GRADCAM_LOCK, torch.enable_grad():
        heat = gradcam(model, model_name, images, data.normalize, torch.device("cpu"), targets=labels.tolist())
    with torch.no_grad():
        preds = model(data.normalize(images)).argmax(1).tolist()
    return heat, preds


def save_upload(name: str, payload: bytes, s: Settings, data: DataBundle) -> Path:
    """Store an uploaded checkpoint under the cache (named by its content hash, so that it
    never overwrites another) after checking that it fits the chosen model and data set."""
    suffix = ".safetensors" if name.endswith(".safetensors") else ".pt"
    path = cache_dir() / "uploads" / f"{hashlib.sha256(payload).hexdigest()[:16]}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.part{suffix}")  # the suffix tells the loader the format
    tmp.write_bytes(payload)
    try:
        checkpoint_model(tmp, s.model, data, torch.device("cpu"))
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


# --- jobs --------------------------------------------------------------------------------


@st.cache_resource
def job_queue() -> JobQueue:
    """One queue for the whole server: every browser session's jobs run one at a time."""
    return JobQueue()


def submit_training(s: Settings, data: DataBundle) -> Job:
    recipe = default_recipe(s.dataset, s.model)
    device = s.device_used

    def work(progress):
        _, meta = trained_model(
            data, s.model, recipe, range(data.num_classes), device, seed=s.seed, cache_dir=cache_dir(),
            progress=progress, phase="original",
        )  # fmt: skip
        return meta["checkpoint"]

    return job_queue().submit(session_id(), f"train {s.model} on {s.dataset} (seed {s.seed})", work)


def submit_experiment(cfg: ExperimentConfig, label: str) -> Job:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    forget = "-".join(str(c) for c in cfg.forget)
    out = runs_root() / f"{stamp}-{cfg.dataset}-{cfg.model}-forget{forget}-{uuid.uuid4().hex[:4]}"

    def work(progress):
        metrics, models = run_experiment(cfg, progress=progress)
        write_results(out, metrics, models)
        return str(out)

    return job_queue().submit(session_id(), label, work)


POLL_SECONDS = 1.0  # how often a page with a running job redraws its progress


def live_jobs(kinds: str = "", on_update: Callable[[list[Job]], None] | None = None) -> None:
    """Show this session's jobs (see :func:`show_jobs`), redrawn every ``POLL_SECONDS`` while
    one of them is queued or running, and not at all otherwise: an idle page costs the server
    nothing, so the job has the CPU to itself. When the last active job ends the whole page
    reruns once, which shows its result and stops the polling. ``on_update(jobs)`` runs at
    each redraw, inside the same fragment."""
    active = any(j.active for j in job_queue().jobs(session_id()) if kinds in j.label)

    @st.fragment(run_every=POLL_SECONDS if active else None)
    def panel() -> None:
        jobs = show_jobs(kinds)
        if on_update is not None:
            on_update(jobs)
        if active and not any(j.active for j in jobs):
            st.rerun()

    panel()


def show_jobs(kinds: str = "") -> list[Job]:
    """This session's jobs (whose label contains ``kinds``) with progress, queue position,
    elapsed time and a cancel button. Returns them."""
    queue = job_queue()
    mine = [j for j in queue.jobs(session_id()) if kinds in j.label]
    for job in reversed(mine[-5:]):
        with st.container(border=True):
            st.markdown(f"**{job.label}** · {job.state}")
            if job.state == "queued":
                st.caption(
                    f"waiting: {queue.ahead(job)} job(s) ahead of it on this device (one job runs at a time), "
                    f"position {queue.position(job)} in the queue"
                )
            for name, p in job.phases.items():
                frac = min(p.done / p.total, 1.0) if p.total else 0.0
                st.progress(frac, text=f"{name}: {p.done}/{p.total} · {p.seconds:.1f} s")
            if job.state == "running":
                eta = job.eta()
                st.caption(f"elapsed {job.elapsed:.1f} s" + (f" · {job.phase} ends in ~{eta:.0f} s" if eta else ""))
            elif job.finished is not None and job.started is not None:
                st.caption(f"took {job.elapsed:.1f} s")
            if job.error and job.state != "cancelled":
                st.error(job.error)
            if job.active and st.button("Cancel", key=f"cancel-{job.id}"):
                queue.cancel(job.id)
                st.rerun()
    return mine
