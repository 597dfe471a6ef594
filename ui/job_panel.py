"""The dashboard's side of the background job queue: submit training and experiments, and
show this session's jobs with live progress, queue position and a cancel button.

One queue serves the whole server (``unsir_core.jobs``), so every browser session's jobs run
one at a time on the device. Each job has a ``kind`` ("train", "unlearn") by which a page
picks the jobs it shows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import streamlit as st

from unsir_core.data import DataBundle
from unsir_core.experiment import ExperimentConfig, run_experiment
from unsir_core.jobs import Job, JobQueue
from unsir_core.model_cache import trained_model
from unsir_core.paths import default_cache_dir
from unsir_core.runs import check_run_target, write_run

from .runstore import runs_root
from .state import Settings, session_id

TRAIN, UNLEARN = "train", "unlearn"
POLL_SECONDS = 1.0  # how often a page with a running job redraws its progress


@st.cache_resource
def job_queue() -> JobQueue:
    """One queue for the whole server: every browser session's jobs run one at a time."""
    return JobQueue()


def submit_training(s: Settings, data: DataBundle) -> Job:
    recipe = s.recipe
    device = s.device_used

    def work(progress):
        _, meta = trained_model(
            data,
            s.model,
            recipe,
            range(data.num_classes),
            device,
            seed=s.seed,
            cache_dir=default_cache_dir(),
            progress=progress,
            phase="original",
        )
        return meta["checkpoint"]

    label = f"train {s.model} on {s.dataset} ({s.recipes} recipe, seed {s.seed})"
    return job_queue().submit(session_id(), label, work, kind=TRAIN)


def submit_experiment(cfg: ExperimentConfig, label: str) -> Job:
    """Queue ``cfg``; its run goes to a new folder of the run store, which is checked now (an
    UnsirError if it cannot be written), not after the experiment."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    forget = "-".join(str(c) for c in cfg.forget)
    out = check_run_target(runs_root() / f"{stamp}-{cfg.dataset}-{cfg.model}-forget{forget}-{uuid.uuid4().hex[:4]}")

    def work(progress):
        metrics, models = run_experiment(cfg, progress=progress)
        write_run(out, metrics, models)
        return str(out)

    return job_queue().submit(session_id(), label, work, kind=UNLEARN)


def live_jobs(kind: str, on_update: Callable[[list[Job]], None] | None = None) -> None:
    """Show this session's jobs of ``kind`` (see :func:`show_jobs`), redrawn every
    ``POLL_SECONDS`` while one of them is queued or running, and not at all otherwise: an idle
    page costs the server nothing, so the job has the CPU to itself. When the last active job
    ends the whole page reruns once, which shows its result and stops the polling.
    ``on_update(jobs)`` runs at each redraw, inside the same fragment."""
    active = any(j.active for j in job_queue().jobs(session_id(), kind=kind))

    @st.fragment(run_every=POLL_SECONDS if active else None)
    def panel() -> None:
        jobs = show_jobs(kind)
        if on_update is not None:
            on_update(jobs)
        if active and not any(j.active for j in jobs):
            st.rerun()

    panel()


def show_jobs(kind: str) -> list[Job]:
    """This session's jobs of ``kind`` with progress, queue position, elapsed time and a
    cancel button. Returns them."""
    queue = job_queue()
    mine = queue.jobs(session_id(), kind=kind)
    for job in reversed(mine[-5:]):
        with st.container(border=True):
            st.markdown(f"**{job.label}** · {job.state}")
            if job.state == "queued":
                st.caption(
                    f"waiting: {queue.ahead(job)} job(s) ahead of it on this device (one job runs at a time), "
                    f"position {queue.position(job)} in the queue"
                )
            for name, p in job.phases.items():
                st.progress(p.fraction, text=f"{name}: {p.done}/{p.total} · {p.seconds:.1f} s")
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
