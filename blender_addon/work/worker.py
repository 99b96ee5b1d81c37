"""Background threads for everything slow, and the main-thread drain of their results.

Blender's main thread must never wait on the network or on disk-heavy work. Operators hand
a job to ``submit``: ``work()`` runs off the main thread and must not touch ``bpy``; its
outcome is queued, and ``drain`` (called by a ``bpy.app.timers`` callback, see
``__init__``) runs ``on_done(result)`` or ``on_error(exc)`` on the main thread, where
touching ``bpy`` data is safe.

Two shapes, for two kinds of work:

* :class:`Worker`: one thread, jobs in submission order. For what must stay ordered and
  quick: clicks and session calls (``WORKER``), polling, downloads and account queries
  (``BACKGROUND``), mask overlays for the Preview (``OVERLAY``).
* :class:`LongJobs`: a thread per job, each with a cancel event. For what can wait minutes
  (renders, uploads, a create call waiting for a free task slot), which on ``WORKER`` would
  hold up every click queued behind it (``LONG``).

Guarantee (both): after ``submit`` returns, exactly one of ``on_done`` / ``on_error`` will
run, on the thread that calls ``drain``, unless ``stop`` is called first (then neither runs).
This module has no ``bpy`` import so it can be tested with plain pytest.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "JobCancelled", "LongJob", "LongJobs", "Worker"]


@dataclass
class Job:
    label: str
    work: Callable[[], Any]
    on_done: Callable[[Any], None]
    on_error: Callable[[BaseException], None]
    submitted_at: float = field(default_factory=time.monotonic)


_STOP = object()


class JobCancelled(Exception):
    """A long job stopped early because it was cancelled; it kept nothing half-done."""


class _Drained:
    """The result queue and its main-thread drain, shared by both kinds of worker."""

    def __init__(self) -> None:
        self._results: queue.SimpleQueue[tuple[Job, bool, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self.longest_drain_s = 0.0
        self.on_submit: Callable[[], None] | None = None
        """Called on the submitting thread after each submit (the add-on wakes its timer)."""

    @property
    def busy(self) -> bool:
        """True while a job is queued, running, or waiting for its result to be drained."""
        return self._pending > 0

    def _forget(self, job: Job) -> None:
        """Called on the draining thread just before the job's callback."""

    def drain(self, budget_s: float = 0.004) -> int:
        """Run queued callbacks on the calling (main) thread for at most ``budget_s``.

        At least one callback runs per call when any is waiting, so progress is guaranteed;
        the rest wait for the next tick. Returns how many ran.
        """
        started = time.perf_counter()
        ran = 0
        while True:
            try:
                job, ok, value = self._results.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._pending -= 1
            self._forget(job)
            try:
                (job.on_done if ok else job.on_error)(value)
            except Exception:  # a broken callback must not kill the timer that drains
                traceback.print_exc()
            ran += 1
            if time.perf_counter() - started >= budget_s:
                break
        self.longest_drain_s = max(self.longest_drain_s, time.perf_counter() - started)
        return ran


class Worker(_Drained):
    """A single daemon thread fed by a queue; results come back through ``drain``."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.current: str = ""

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kling-worker", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the running job; queued jobs and undrained results are dropped."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join(timeout)
        self._jobs = queue.SimpleQueue()
        self._results = queue.SimpleQueue()
        self._pending = 0
        self.current = ""

    def submit(
        self,
        label: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.start()
        with self._lock:
            self._pending += 1
        self._jobs.put(Job(label, work, on_done, on_error))
        if self.on_submit is not None:
            self.on_submit()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            assert isinstance(job, Job)
            self.current = job.label
            try:
                outcome = (job, True, job.work())
            except BaseException as exc:
                outcome = (job, False, exc)
            self.current = ""
            self._results.put(outcome)


@dataclass
class LongJob(Job):
    """A job that may run for minutes; ``work(cancel)`` should return early once it is set.

    ``progress`` is anything with a ``text()`` method, written by the work and read by the
    panel; ``on_cancel`` is called (on the cancelling thread) for work that cannot poll the
    event, such as a child process to terminate.
    """

    key: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Any = None
    on_cancel: Callable[[], None] | None = None

    def text(self) -> str:
        """What the panel shows for this job."""
        if self.cancel.is_set():
            return f"{self.label}: cancelling…"
        return self.progress.text() if self.progress is not None else f"{self.label}…"


class LongJobs(_Drained):
    """Long jobs, each on a thread of its own while it runs, so none waits behind another.

    Threads are kept and reused: a couple wait idle from ``start`` on, and one more is
    made only when every thread is busy. Submitting therefore never waits for a thread to
    start, which under load can take the OS many milliseconds (Blender's main thread would
    wait that long inside an operator).

    Each job has a ``key`` naming what it works on (at most one job per key runs at a
    time, so the UI can find a job to show or cancel). A job is listed in ``jobs`` from
    ``submit`` until its callback runs; callbacks run in the order the jobs finish.
    Cancelling is cooperative: ``cancel(key)`` sets the job's event (and calls its
    ``on_cancel``); the job still ends with exactly one callback, usually ``on_error``.
    """

    SPARE_THREADS = 2

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, LongJob] = {}
        self._queue: queue.SimpleQueue[tuple[LongJob, queue.SimpleQueue] | object] = \
            queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Have ``SPARE_THREADS`` threads waiting, so the next jobs start without a new one."""
        with self._lock:
            alive = sum(thread.is_alive() for thread in self._threads)
        for _ in range(self.SPARE_THREADS - alive):
            self._spawn(spare=True)

    def _spawn(self, spare: bool) -> None:
        """A new thread; ``spare`` when it waits for a future job, not for one just queued."""
        with self._lock:
            thread = threading.Thread(target=self._serve, name="kling-long", daemon=True,
                                      args=(spare, self._queue, self._idle))
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def get(self, key: str) -> LongJob | None:
        return self.jobs.get(key)

    def submit(
        self,
        key: str,
        label: str,
        work: Callable[[threading.Event], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        *,
        progress: Any = None,
        on_cancel: Callable[[], None] | None = None,
    ) -> LongJob:
        """Run ``work(cancel_event)`` on a thread of its own; ValueError if ``key`` is running."""
        with self._lock:
            if key in self.jobs:
                raise ValueError(f"{self.jobs[key].label} is already running")
            job = LongJob(label, lambda: None, on_done, on_error, key=key, progress=progress,
                          on_cancel=on_cancel)
            job.work = lambda: work(job.cancel)
            self.jobs[key] = job
            self._pending += 1
            # A job that outlives ``stop`` reports to the queue of its time, which is dropped.
            self._queue.put((job, self._results))
        if not self._idle.acquire(blocking=False):  # every thread is busy with a long job
            self._spawn(spare=False)
        return job

    def cancel(self, key: str) -> bool:
        """Ask the job to stop; False when no such job is running."""
        job = self.jobs.get(key)
        if job is None:
            return False
        job.cancel.set()
        if job.on_cancel is not None:
            job.on_cancel()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every job, wait up to ``timeout`` in all for the threads, drop callbacks."""
        with self._lock:
            keys, threads = list(self.jobs), list(self._threads)
            old_queue, self._queue = self._queue, queue.SimpleQueue()
            self._idle = threading.Semaphore(0)
        for key in keys:
            self.cancel(key)
        for _ in threads:
            old_queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            self.jobs.clear()
            self._threads = []
            self._results = queue.SimpleQueue()
            self._pending = 0

    def _forget(self, job: Job) -> None:
        assert isinstance(job, LongJob)
        with self._lock:
            if self.jobs.get(job.key) is job:
                del self.jobs[job.key]

    @staticmethod
    def _serve(spare: bool, jobs: queue.SimpleQueue, idle: threading.Semaphore) -> None:
        """Run jobs from ``jobs`` (the queue of this thread's generation, until ``stop``);
        ``idle`` counts the threads free for the next job."""
        me = threading.current_thread()
        if spare:
            idle.release()
        while True:
            item = jobs.get()
            if item is _STOP:
                return
            job, results = item  # type: ignore[misc]
            me.name = f"kling-long-{job.key}"
            try:
                outcome = (job, True, job.work())
            except BaseException as exc:
                outcome = (job, False, exc)
            me.name = "kling-long"
            results.put(outcome)
            idle.release()


WORKER = Worker()
"""The interactive worker: sessions and clicks, in the order the user acted."""

BACKGROUND = Worker()
"""Polling, downloads and account queries, so none of them holds up a click on ``WORKER``."""

OVERLAY = Worker()
"""Mask overlays the Preview asks for (``overlay_cache``): a few ms each, never behind a click."""

LONG = LongJobs()
"""Renders, uploads, create calls waiting for a task slot, copies of files: one thread each."""
