"""The add-on's worker: one callback per job, on the draining thread, in order."""

from __future__ import annotations

import threading
import time

import pytest

from blender_addon.work.worker import Worker


def _drain_until_idle(worker: Worker, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.busy:
        worker.drain()
        assert time.monotonic() < deadline, "worker did not finish"
        time.sleep(0.001)


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.stop()


def test_work_runs_off_the_main_thread_and_callbacks_on_it(worker):
    main = threading.get_ident()
    seen = {}

    def work():
        seen["work"] = threading.get_ident()
        return 42

    worker.submit("job", work, lambda r: seen.update(done=(r, threading.get_ident())),
                  lambda e: seen.update(error=e))
    assert worker.busy
    _drain_until_idle(worker)
    assert seen["work"] != main
    assert seen["done"] == (42, main)
    assert "error" not in seen


def test_exactly_one_callback_per_job_in_submission_order(worker):
    events = []
    for i in range(20):
        def work(i=i):
            if i % 3 == 0:
                raise ValueError(f"bad {i}")
            return i

        worker.submit(f"job {i}", work, lambda r: events.append(("done", r)),
                      lambda e: events.append(("error", str(e))))
    _drain_until_idle(worker)
    assert len(events) == 20
    assert [e[1] if e[0] == "done" else int(e[1].split()[1]) for e in events] == list(range(20))
    assert all((e[0] == "error") == (i % 3 == 0) for i, e in enumerate(events))


def test_drain_respects_its_budget_but_always_makes_progress(worker):
    for _ in range(5):
        worker.submit("slow callback", lambda: None, lambda r: time.sleep(0.01), print)
    while worker._results.qsize() < 5:
        time.sleep(0.001)
    assert worker.drain(budget_s=0.001) == 1
    _drain_until_idle(worker)


def test_a_failing_callback_does_not_break_draining(worker, capsys):
    results = []

    def boom(_):
        raise RuntimeError("callback bug")

    worker.submit("a", lambda: 1, boom, print)
    worker.submit("b", lambda: 2, results.append, print)
    _drain_until_idle(worker)
    assert results == [2]
    assert "callback bug" in capsys.readouterr().err


def test_stop_drops_pending_callbacks(worker):
    called = []
    gate = threading.Event()
    worker.submit("blocked", gate.wait, called.append, called.append)
    gate.set()
    worker.stop()
    assert not worker.busy
    worker.drain()
    assert called == []


# -- long jobs: a thread each, a cancel each ------------------------------------------------


@pytest.fixture
def long_jobs():
    from blender_addon.work.worker import LongJobs

    jobs = LongJobs()
    yield jobs
    jobs.stop()


def test_a_long_job_does_not_hold_up_another_or_the_interactive_worker(long_jobs, worker):
    """While one long job blocks, a second long job and a click-sized job both finish."""
    blocked, events = threading.Event(), []
    long_jobs.submit("slot-wait", "Generate", lambda cancel: blocked.wait(10),
                     lambda r: events.append(("generate", r)), events.append)
    long_jobs.submit("render", "Conform", lambda cancel: "clip.mp4",
                     lambda r: events.append(("conform", r)), events.append)
    worker.submit("click", lambda: "mask", lambda r: events.append(("click", r)), events.append)
    deadline = time.monotonic() + 5
    while len(events) < 2:
        long_jobs.drain()
        worker.drain()
        assert time.monotonic() < deadline, events
        time.sleep(0.001)
    assert sorted(events) == [("click", "mask"), ("conform", "clip.mp4")]
    assert long_jobs.busy and list(long_jobs.jobs) == ["slot-wait"]
    blocked.set()
    _drain_until_idle(long_jobs)
    assert events[-1] == ("generate", True) and not long_jobs.jobs


def test_cancel_reaches_the_work_and_its_hook_and_the_job_ends_with_one_callback(long_jobs):
    hooked, outcome = [], []

    def work(cancel: threading.Event):
        if cancel.wait(10):
            raise RuntimeError("stopped")
        return "finished"

    job = long_jobs.submit("k", "Wait", work, outcome.append, outcome.append,
                           on_cancel=lambda: hooked.append(threading.get_ident()))
    assert long_jobs.get("k") is job and job.text() == "Wait…"
    started = time.monotonic()
    assert long_jobs.cancel("k")
    assert job.text() == "Wait: cancelling…"
    _drain_until_idle(long_jobs)
    assert time.monotonic() - started < 1.0
    assert hooked == [threading.get_ident()]
    assert len(outcome) == 1 and str(outcome[0]) == "stopped"
    assert not long_jobs.cancel("k") and long_jobs.get("k") is None


def test_one_job_per_key_at_a_time(long_jobs):
    gate = threading.Event()
    long_jobs.submit("strip", "Conform plate", lambda cancel: gate.wait(5), print, print)
    with pytest.raises(ValueError, match="Conform plate is already running"):
        long_jobs.submit("strip", "Conform plate", lambda cancel: None, print, print)
    gate.set()
    _drain_until_idle(long_jobs)
    long_jobs.submit("strip", "Conform plate", lambda cancel: None, print, print)
    _drain_until_idle(long_jobs)


def test_progress_text_is_what_the_panel_shows(long_jobs):
    class Progress:
        def text(self) -> str:
            return "Publishing… 40%"

    gate = threading.Event()
    job = long_jobs.submit("p", "Start editing", lambda cancel: gate.wait(5), print, print,
                           progress=Progress())
    assert job.text() == "Publishing… 40%"
    gate.set()
    _drain_until_idle(long_jobs)


def test_stop_cancels_running_jobs_and_drops_their_callbacks(long_jobs):
    called, seen_cancel = [], threading.Event()

    def work(cancel):
        cancel.wait(10)
        seen_cancel.set()

    long_jobs.submit("a", "A", work, called.append, called.append)
    long_jobs.stop(timeout=2)
    assert seen_cancel.is_set()
    assert not long_jobs.busy and not long_jobs.jobs
    long_jobs.drain()
    assert called == []


def test_submitting_reuses_waiting_threads_and_adds_one_only_when_all_are_busy(long_jobs):
    """Starting a thread can take the OS milliseconds under load; Blender's main thread
    must not wait for that inside an operator, so threads wait ready and are reused."""
    long_jobs.start()
    spare = set(long_jobs._threads)
    assert len(spare) == long_jobs.SPARE_THREADS
    gate = threading.Event()
    for n in range(long_jobs.SPARE_THREADS):
        long_jobs.submit(f"job {n}", "Wait", lambda cancel: gate.wait(5), print, print)
    assert set(long_jobs._threads) == spare
    long_jobs.submit("one more", "Wait", lambda cancel: gate.wait(5), print, print)
    assert len(set(long_jobs._threads) - spare) == 1
    gate.set()
    _drain_until_idle(long_jobs)
    again = threading.Event()
    long_jobs.submit("later", "Wait", lambda cancel: again.wait(5), print, print)
    assert len(long_jobs._threads) == long_jobs.SPARE_THREADS + 1  # reused, none added
    again.set()
    _drain_until_idle(long_jobs)


def test_on_submit_is_told_of_each_job_once_it_is_queued(worker):
    seen = []
    worker.on_submit = lambda: seen.append(worker.busy)
    for i in range(3):
        worker.submit(f"job {i}", lambda: None, lambda r: None, lambda e: None)
    assert seen == [True, True, True]  # the job was counted before the hook ran
    _drain_until_idle(worker)
    assert len(seen) == 3  # draining calls nothing more
