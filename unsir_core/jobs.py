"""A process-wide job queue: long work (training, unlearning) runs in one background worker.

The dashboard submits work here instead of running it in a page script, so the page stays
responsive, a job survives page switches and reruns, and several browser sessions share the
one device: jobs run one at a time in submission order, the others wait with their position
known. A job is a function ``fn(progress) -> result``; it reports progress through
``progress(phase, done, total)`` (the core's :data:`~unsir_core.train.ProgressFn`), and a
cancel request makes the next progress call raise :class:`JobCancelled`, which unwinds the
work cleanly (the core writes checkpoints and runs atomically, so nothing half-written stays).

No Streamlit here: the queue is plain threads, testable on its own.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UnsirError
from .runtime import ProgressFn

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


class JobCancelled(Exception):
    """Raised inside a job's work when its cancel was requested (deliberately not an
    UnsirError, so that the experiment does not treat it as one method's failure)."""


@dataclass
class PhaseProgress:
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return self.last - self.started

    @property
    def fraction(self) -> float:
        """Completed fraction of the phase, in [0, 1]."""
        return min(self.done / self.total, 1.0) if self.total else 0.0


@dataclass
class Job:
    """One unit of background work and everything a page needs to show about it."""

    id: int
    owner: str  # who submitted it (a browser session id); pages list their own jobs
    label: str  # what it does, in words
    fn: Callable[[ProgressFn], Any]
    kind: str = "job"  # what sort of work ("train", "unlearn"): pages pick the jobs they show by it
    state: str = QUEUED
    phase: str = ""  # the phase running now
    phases: dict[str, PhaseProgress] = field(default_factory=dict)  # in the order they started
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def elapsed(self) -> float:
        """Seconds since the job started (0 while it waits)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def eta(self) -> float | None:
        """Seconds left in the current phase at its rate so far, or None before a step is done."""
        p = self.phases.get(self.phase)
        if not p or not p.done or not p.total:
            return None
        return (p.total - p.done) * p.seconds / p.done

    def cancel(self) -> None:
        self._cancel.set()

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.id} cancelled")
        now = time.monotonic()
        p = self.phases.get(phase)
        if p is None or done < p.done:  # a new phase, or the same phase name started again
            self.phases.pop(phase, None)  # re-inserted last: the dict's order is the start order
            p = self.phases[phase] = PhaseProgress(started=now)
        p.done, p.total, p.last = done, total, now
        self.phase = phase


class JobQueue:
    """FIFO of jobs run by one daemon worker thread (one job on the device at a time)."""

    def __init__(self, keep_finished: int = 200) -> None:
        self._lock = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._keep = keep_finished
        self._worker: threading.Thread | None = None

    def submit(self, owner: str, label: str, fn: Callable[[ProgressFn], Any], *, kind: str = "job") -> Job:
        with self._lock:
            job = Job(next(self._ids), owner, label, fn, kind)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="unsir-jobs", daemon=True)
                self._worker.start()
            self._lock.notify_all()
        return job

    def jobs(self, owner: str | None = None, *, kind: str | None = None) -> list[Job]:
        """Jobs (of ``owner`` and of ``kind``, or all), oldest first."""
        with self._lock:
            return [
                j
                for j in self._jobs.values()
                if (owner is None or j.owner == owner) and (kind is None or j.kind == kind)
            ]

    def position(self, job: Job) -> int:
        """0 while it runs, n when n-1 jobs are ahead of it in the queue, -1 when finished."""
        with self._lock:
            if job.state == RUNNING:
                return 0
            try:
                return list(self._waiting).index(job) + 1
            except ValueError:
                return -1

    def ahead(self, job: Job) -> int:
        """How many jobs run before a waiting ``job`` starts (the running one included)."""
        with self._lock:
            if job not in self._waiting:
                return 0
            running = any(j.state == RUNNING for j in self._jobs.values())
            return list(self._waiting).index(job) + int(running)

    def cancel(self, job_id: int) -> None:
        """Cancel a job: a waiting one never starts; a running one stops at its next step."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return
            job.cancel()
            if job in self._waiting:
                self._waiting.remove(job)
                job.state, job.finished, job.error = CANCELLED, time.monotonic(), "cancelled before it started"

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until ``job`` finishes (or ``timeout`` seconds pass); for scripts and tests."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while job.active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._lock.wait(left)
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if not j.active]
        for job in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    self._lock.wait()
                job = self._waiting.popleft()
                job.state, job.started = RUNNING, time.monotonic()
            state, result, error = _run(job)
            with self._lock:
                job.state, job.result, job.error, job.finished = state, result, error, time.monotonic()
                self._lock.notify_all()


def _run(job: Job) -> tuple[str, Any, str | None]:
    try:
        return DONE, job.fn(job._progress), None
    except JobCancelled:
        return CANCELLED, None, "cancelled"
    except UnsirError as err:
        return FAILED, None, str(err)
    except torch.OutOfMemoryError:
        return FAILED, None, "out of memory on the device: choose a smaller batch size or model, or the CPU"
    except MemoryError:
        return FAILED, None, "out of host memory: choose a smaller data set, batch size or model"
    except Exception as err:  # a bug: keep the worker alive, show the error, log the traceback
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        return FAILED, None, f"{type(err).__name__}: {err}"
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
