"""The background job queue: order, positions, progress, cancel, and errors kept in the job."""

import threading
import time

import pytest

from unsir_core.errors import UnsirError
from unsir_core.jobs import CANCELLED, DONE, FAILED, RUNNING, JobQueue


def gated(gate: threading.Event, steps: int = 3):
    """A job that reports ``steps`` steps of phase 'work', then waits for ``gate``."""

    def fn(progress):
        for i in range(1, steps + 1):
            progress("work", i, steps)
        while not gate.wait(0.01):
            progress("work", steps, steps)  # keeps checking for a cancel, as real loops do per step
        return "result"

    return fn


def test_jobs_run_one_at_a_time_in_order_with_positions():
    q, gate = JobQueue(), threading.Event()
    first = q.submit("a", "first", gated(gate))
    second = q.submit("b", "second", lambda progress: "second result")
    deadline = time.monotonic() + 5
    while first.state != RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (q.position(first), q.position(second)) == (0, 1)
    assert (q.ahead(first), q.ahead(second)) == (0, 1)
    assert second.state == "queued"
    gate.set()
    q.wait(second, timeout=5)
    assert (first.state, first.result, second.state, second.result) == (DONE, "result", DONE, "second result")
    assert first.finished <= second.started
    assert q.position(first) == -1
    assert [j.label for j in q.jobs("a")] == ["first"]


def test_progress_is_recorded_per_phase_with_an_eta():
    q = JobQueue()
    seen = {}

    def fn(progress):
        progress("noise", 1, 4)
        progress("noise", 4, 4)
        progress("impair", 1, 2)
        seen["eta"] = job.eta()
        return None

    job = q.submit("a", "phases", fn)
    q.wait(job, timeout=5)
    assert list(job.phases) == ["noise", "impair"]
    assert (job.phases["noise"].done, job.phases["noise"].total) == (4, 4)
    assert job.phase == "impair" and job.phases[job.phase].fraction == 0.5
    assert seen["eta"] is not None and seen["eta"] >= 0


def test_cancel_stops_a_running_job_at_its_next_step_and_drops_a_waiting_one():
    q, gate = JobQueue(), threading.Event()
    running = q.submit("a", "running", gated(gate))
    waiting = q.submit("a", "waiting", lambda progress: "never")
    while running.state != RUNNING:
        time.sleep(0.01)
    q.cancel(waiting.id)
    q.cancel(running.id)
    q.wait(running, timeout=5)
    assert running.state == CANCELLED and running.result is None
    assert waiting.state == CANCELLED and waiting.started is None
    after = q.submit("a", "after", lambda progress: "still works")
    assert q.wait(after, timeout=5).result == "still works"


@pytest.mark.parametrize(
    "error, message",
    [(UnsirError("no forget class chosen"), "no forget class chosen"), (RuntimeError("boom"), "RuntimeError: boom")],
)
def test_a_failing_job_keeps_its_message_and_the_worker_goes_on(error, message):
    q = JobQueue()

    def fail(progress):
        raise error

    job = q.wait(q.submit("a", "fails", fail), timeout=5)
    assert job.state == FAILED and job.error == message
    assert q.wait(q.submit("a", "next", lambda p: 1), timeout=5).state == DONE
