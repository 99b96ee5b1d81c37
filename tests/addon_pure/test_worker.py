"""The add-on's worker: one callback per job, on the draining thread, in order."""

from __future__ import annotations

import threading
import time

import pytest

from blender_addon.worker import Worker


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
