"""One background thread for everything slow, and the main-thread drain of its results.

Blender's main thread must never wait on the network or on disk-heavy work. Operators hand
a job to ``submit``: ``work()`` runs on the worker thread and must not touch ``bpy``; its
outcome is queued, and ``drain`` (called by a ``bpy.app.timers`` callback, see
``__init__``) runs ``on_done(result)`` or ``on_error(exc)`` on the main thread, where
touching ``bpy`` data is safe.

Guarantee: after ``submit`` returns, exactly one of ``on_done`` / ``on_error`` will run, on
the thread that calls ``drain``, unless ``stop`` is called first (then neither runs).
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

__all__ = ["Job", "Worker"]


@dataclass
class Job:
    label: str
    work: Callable[[], Any]
    on_done: Callable[[Any], None]
    on_error: Callable[[BaseException], None]
    submitted_at: float = field(default_factory=time.monotonic)


_STOP = object()


class Worker:
    """A single daemon thread fed by a queue; results come back through ``drain``."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Job, bool, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self.current: str = ""
        self.longest_drain_s = 0.0

    @property
    def busy(self) -> bool:
        """True while a job is queued, running, or waiting for its result to be drained."""
        return self._pending > 0

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
            try:
                (job.on_done if ok else job.on_error)(value)
            except Exception:  # a broken callback must not kill the timer that drains
                traceback.print_exc()
            ran += 1
            if time.perf_counter() - started >= budget_s:
                break
        self.longest_drain_s = max(self.longest_drain_s, time.perf_counter() - started)
        return ran


WORKER = Worker()
"""The interactive worker: sessions, clicks and task creation, in the order the user acted."""

BACKGROUND = Worker()
"""Polling and downloads, so a long download never holds up a click on ``WORKER``."""
