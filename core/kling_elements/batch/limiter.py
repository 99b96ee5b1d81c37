"""The batch's task slots: a counting semaphore whose limit adapts to Kling's pushback.

Concurrency is bounded where Kling counts it (a running task); on 1303 the limit halves and
it grows back by one after a few accepted creates (AIMD), so a burst of refusals never
becomes a storm of retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Limiter"]


class Limiter:
    """A counting semaphore whose limit follows AIMD between 1 and ``maximum``.

    ``pressure()`` (a 1303) halves the limit, at most once per ``cooldown_s`` so the
    refusals of one burst count once; ``succeeded()`` (an accepted create) raises it by one
    after ``increase_after`` successes. Lowering the limit never interrupts a holder: new
    acquisitions wait until fewer than ``limit`` are held.
    """

    def __init__(self, maximum: int, *, increase_after: int = 3, cooldown_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency {maximum} must be at least 1")
        self.maximum = maximum
        self.limit = maximum
        self.in_use = 0
        self._increase_after = increase_after
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._streak = 0
        self._last_cut = -float("inf")
        self._cond = threading.Condition()

    def acquire(self, *, force: bool = False) -> None:
        """Take a slot, waiting while the limit is reached (``force``: take it regardless,
        for a task that already runs at Kling)."""
        with self._cond:
            while not force and self.in_use >= self.limit:
                self._cond.wait()
            self.in_use += 1

    def release(self) -> None:
        with self._cond:
            self.in_use -= 1
            self._cond.notify_all()

    def pressure(self) -> int | None:
        """Halve the limit (min 1); the new limit, or ``None`` if unchanged."""
        with self._cond:
            now = self._clock()
            self._streak = 0
            if now - self._last_cut < self._cooldown_s or self.limit == 1:
                return None
            self._last_cut = now
            self.limit = max(1, self.limit // 2)
            return self.limit

    def succeeded(self) -> int | None:
        """Count an accepted create; the raised limit, or ``None`` if unchanged."""
        with self._cond:
            self._streak += 1
            if self.limit >= self.maximum or self._streak < self._increase_after:
                return None
            self._streak = 0
            self.limit += 1
            self._cond.notify_all()
            return self.limit
